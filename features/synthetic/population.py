"""The customer archive of a synthetic utility: supply units → stations → 台区 (areas) → customers.

First step of generation: everything later (consumption, events, bills) is drawn per customer from these
attributes. Customers are numbered in area order so that a chunk of customers holds whole areas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.synthetic import domain as d
from features.synthetic.config import Calendar

# [I] Sizes of the hierarchy; a 供电所 serves a few thousand customers in this model.
CUSTOMERS_PER_STATION = 2000
STATIONS_PER_UNIT = 8
PUBLIC_AREA_CUSTOMERS = 40  # mean customers on a public transformer (公变台区)
DEDICATED_AREA_CUSTOMERS = 8  # dedicated-transformer customers (专变) grouped per 10 kV line
DEDICATED_MIN_KVA = 315.0
TRANSFORMER_SIZES = np.array([315, 400, 500, 630, 800, 1000, 1250, 1600, 2000, 2500], dtype=np.float64)
PUBLIC_TRANSFORMER_SIZES = np.array([200, 315, 400, 500, 630, 800, 1000, 1250], dtype=np.float64)
SHARE_NEW = 0.10  # customers opened during the span
SHARE_CLOSED = 0.03  # customers closed during the span
SHARE_GROUP = 0.05  # commercial and industrial customers belonging to a 集团客户


@dataclass
class Population:
    """Per-customer attribute arrays (index = customer number, in area order) and the area table."""

    customer_id: pa.Array
    category: np.ndarray  # int8 index into domain.CATEGORIES
    industry: np.ndarray  # int16 index into domain.INDUSTRIES, -1 for residential
    tariff: np.ndarray  # int8 index into domain.TARIFFS
    method: np.ndarray  # int8 index into domain.METHODS
    capacity_kva: np.ndarray
    transformers: np.ndarray  # number of equal transformers making up the capacity (two-part customers)
    voltage_kv: np.ndarray
    station: np.ndarray  # int32
    unit: np.ndarray  # int32
    area: np.ndarray  # int32 index into the area arrays
    open_date: np.ndarray  # datetime64[D]
    close_date: np.ndarray  # datetime64[D], NaT when still open
    group: np.ndarray  # int32, -1 when not in a group
    price: np.ndarray  # energy price 元/kWh
    area_id: pa.Array
    area_station: np.ndarray
    area_unit: np.ndarray
    area_kva: np.ndarray
    area_dedicated: np.ndarray  # bool

    @property
    def size(self) -> int:
        return self.category.shape[0]

    @property
    def areas(self) -> int:
        return self.area_station.shape[0]

    def chunk(self, lo: int, hi: int) -> Population:
        """Customers lo..hi-1 and their areas (whole areas only), with area numbers starting at 0."""
        a_lo, a_hi = int(self.area[lo]), int(self.area[hi - 1]) + 1
        out = {}
        for name, value in self.__dict__.items():
            if name.startswith("area_"):
                out[name] = value.slice(a_lo, a_hi - a_lo) if name == "area_id" else value[a_lo:a_hi]
            elif name == "customer_id":
                out[name] = value.slice(lo, hi - lo)
            else:
                out[name] = value[lo:hi]
        out["area"] = out["area"] - a_lo
        return Population(**out)


def station_codes(station: np.ndarray) -> pa.Array:
    return _codes("ST", station, 4)


def unit_codes(unit: np.ndarray) -> pa.Array:
    return _codes("SU", unit, 3)


def _codes(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers.astype(np.int64) + 1), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def build_population(n: int, calendar: Calendar, rng: np.random.Generator) -> Population:
    n_stations = max(3, round(n / CUSTOMERS_PER_STATION))
    n_units = max(2, round(n_stations / STATIONS_PER_UNIT))
    category = rng.choice(4, size=n, p=d.CATEGORY_SHARE).astype(np.int8)
    station = rng.integers(0, n_stations, size=n).astype(np.int32)

    capacity, transformers = _capacity(category, rng)
    voltage = np.select(
        [category == d.RES, capacity < 100, capacity < 8000, capacity < 40000],
        [0.22, 0.38, 10.0, 35.0],
        110.0,
    )
    tariff = np.where(
        category == d.IND, d.TWO_PART, np.where(rng.random(n) < d.TOU_SHARE[category], d.TOU, d.SINGLE)
    ).astype(np.int8)
    cum = np.cumsum(d.METHOD_SHARE[category], axis=1)
    method = (rng.random(n)[:, None] > cum).sum(axis=1).astype(np.int8)
    industry = _industry(category, rng)

    # Areas: public transformers per station, and 10 kV lines of dedicated-transformer customers.
    dedicated = capacity >= DEDICATED_MIN_KVA
    area_key = np.zeros(n, dtype=np.int64)
    area_station_list: list[np.ndarray] = []
    area_dedicated_list: list[np.ndarray] = []
    next_area = 0
    for is_dedicated, per_area in ((False, PUBLIC_AREA_CUSTOMERS), (True, DEDICATED_AREA_CUSTOMERS)):
        members = dedicated == is_dedicated
        counts = np.bincount(station[members], minlength=n_stations)
        n_areas = np.maximum(1, np.rint(counts / per_area)).astype(np.int64)
        first = next_area + np.concatenate([[0], np.cumsum(n_areas)[:-1]])
        offset = np.floor(rng.random(members.sum()) * n_areas[station[members]]).astype(np.int64)
        area_key[members] = first[station[members]] + offset
        area_station_list.append(np.repeat(np.arange(n_stations), n_areas))
        area_dedicated_list.append(np.full(n_areas.sum(), is_dedicated))
        next_area += int(n_areas.sum())
    # Drop areas nobody landed in, and renumber customers in area order.
    used, area = np.unique(area_key, return_inverse=True)
    area_station = np.concatenate(area_station_list)[used].astype(np.int32)
    area_dedicated = np.concatenate(area_dedicated_list)[used]
    order = np.argsort(area, kind="stable")

    def sort(a: np.ndarray) -> np.ndarray:
        return a[order]

    category, station, capacity, transformers, voltage, tariff, method, industry, area = map(
        sort, (category, station, capacity, transformers, voltage, tariff, method, industry, area)
    )
    area = area.astype(np.int32)
    area_unit = (area_station.astype(np.int64) * n_units // n_stations).astype(np.int32)
    area_load = np.bincount(area, weights=capacity, minlength=used.shape[0])
    # Public transformers are sized for diversity (not everyone peaks at once); lines carry the sum.
    need = np.where(area_dedicated, area_load, 0.35 * area_load)
    size_idx = np.searchsorted(PUBLIC_TRANSFORMER_SIZES, need)
    area_kva = np.where(
        area_dedicated | (size_idx >= PUBLIC_TRANSFORMER_SIZES.shape[0]),
        np.ceil(need / 50.0) * 50.0,
        PUBLIC_TRANSFORMER_SIZES[np.minimum(size_idx, PUBLIC_TRANSFORMER_SIZES.shape[0] - 1)],
    )

    open_date, close_date = _lifetimes(n, calendar, rng)
    group = np.full(n, -1, dtype=np.int32)
    in_group = (category != d.RES) & (category != d.AGR) & (rng.random(n) < SHARE_GROUP)
    group[in_group] = rng.integers(0, max(1, n // 400), size=in_group.sum())

    ids = pc.binary_join_element_wise(
        "43", pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1, dtype=np.int64)), pa.string()), 8, "0"), ""
    )
    area_ids = pc.binary_join_element_wise(
        "T", pc.utf8_lpad(pc.cast(pa.array(np.arange(1, used.shape[0] + 1)), pa.string()), 7, "0"), ""
    )
    return Population(
        customer_id=ids,
        category=category,
        industry=industry,
        tariff=tariff,
        method=method,
        capacity_kva=capacity,
        transformers=transformers,
        voltage_kv=voltage,
        station=station,
        unit=area_unit[area],
        area=area,
        open_date=open_date,
        close_date=close_date,
        group=group,
        price=d.energy_price(category, voltage),
        area_id=area_ids,
        area_station=area_station,
        area_unit=area_unit,
        area_kva=area_kva,
        area_dedicated=area_dedicated,
    )


def _capacity(category: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = category.shape[0]
    capacity = np.zeros(n)
    transformers = np.ones(n, dtype=np.int64)
    res = category == d.RES
    capacity[res] = rng.choice([4.0, 6.0, 8.0, 10.0, 12.0], size=res.sum(), p=[0.25, 0.2, 0.35, 0.15, 0.05])
    com = category == d.COM
    capacity[com] = np.clip(np.round(rng.lognormal(np.log(30.0), 1.1, size=com.sum())), 5.0, 2000.0)
    agr = category == d.AGR
    capacity[agr] = rng.choice([10.0, 20.0, 30.0, 50.0, 80.0, 100.0, 160.0, 200.0], size=agr.sum())
    ind = category == d.IND
    # Two-part customers own whole transformers (DOMAIN §2: suspension and reduction act on whole ones).
    k = np.minimum(1 + rng.poisson(0.7, size=ind.sum()), 4)
    size = rng.choice(TRANSFORMER_SIZES, size=ind.sum(), p=_size_weights())
    capacity[ind] = k * size
    transformers[ind] = k
    return capacity, transformers


def _size_weights() -> np.ndarray:
    w = np.array([0.14, 0.13, 0.13, 0.13, 0.11, 0.11, 0.09, 0.07, 0.05, 0.04])
    return w / w.sum()


def _industry(category: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    industry = np.full(category.shape[0], -1, dtype=np.int16)
    for cat in (d.COM, d.IND, d.AGR):
        mask = category == cat
        choices = np.flatnonzero(cat == d.INDUSTRY_CATEGORY)
        weight = d.INDUSTRY_WEIGHT[choices] / d.INDUSTRY_WEIGHT[choices].sum()
        industry[mask] = rng.choice(choices, size=mask.sum(), p=weight)
    return industry


def _lifetimes(n: int, calendar: Calendar, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    start = calendar.month_start[0]
    span_days = int((calendar.span_end - start).astype(np.int64))
    # Archive customers opened 1 month to 25 years before the span; new ones during it.
    age = np.floor(rng.uniform(30, 25 * 365, size=n)).astype(np.int64)
    open_date = start - age.astype("timedelta64[D]")
    new = rng.random(n) < SHARE_NEW
    open_date[new] = start + np.floor(rng.random(new.sum()) * (span_days - 60)).astype("timedelta64[D]")
    close_date = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    first_possible = np.maximum(open_date, start) + np.timedelta64(180, "D")
    room = (calendar.span_end - first_possible).astype(np.int64)
    closing = (rng.random(n) < SHARE_CLOSED) & (room > 0)
    close_date[closing] = first_possible[closing] + np.floor(
        rng.random(closing.sum()) * room[closing]
    ).astype("timedelta64[D]")
    return open_date, close_date


# Fake PII from small built-in lists, so masking can be tested; never real people.
SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = list(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰建国志红文斌辉林梅云海波鹏飞宇浩凯欣怡佳琪晨雪婷慧鑫亮"
)
PLACE = ["湖南省岳阳市", "湖南省长沙市", "湖南省常德市", "湖南省益阳市"]
DISTRICT = [
    "岳阳楼区",
    "云溪区",
    "君山区",
    "华容县",
    "湘阴县",
    "平江县",
    "汨罗市",
    "临湘市",
    "开福区",
    "鼎城区",
]
ROAD = [
    "建设路",
    "人民路",
    "解放路",
    "五一路",
    "巴陵路",
    "金鹗路",
    "东风路",
    "学院路",
    "工业大道",
    "滨湖路",
    "新港路",
    "青年路",
]
COMPANY_WORD = [
    "恒通",
    "华兴",
    "鑫源",
    "宏达",
    "长江",
    "洞庭",
    "湘北",
    "金盛",
    "永安",
    "瑞丰",
    "万和",
    "天成",
]


def pii(pop: Population, rng: np.random.Generator) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Fake names (people or firms), mobile numbers and addresses for every customer."""
    n = pop.size

    def pick(values: list[str], size: int) -> pa.Array:
        return pa.array(values).take(pa.array(rng.integers(0, len(values), size=size)))

    person = pc.binary_join_element_wise(
        pick(SURNAMES, n),
        pick(GIVEN, n),
        pc.if_else(pa.array(rng.random(n) < 0.6), pick(GIVEN, n), ""),
        "",
    )
    industry_name = pa.array([d.INDUSTRY_NAMES[i] for i in d.INDUSTRIES] + [""]).take(
        pa.array(np.where(pop.industry >= 0, pop.industry, len(d.INDUSTRIES)))
    )
    firm = pc.binary_join_element_wise(pick(PLACE, n), pick(COMPANY_WORD, n), industry_name, "有限公司", "")
    name = pc.if_else(pa.array(pop.category == d.RES), person, firm)
    prefix = rng.choice([13, 15, 17, 18, 19], size=n).astype(np.int64)
    phone = pc.cast(pa.array(prefix * 10**9 + rng.integers(0, 10**9, size=n)), pa.string())
    number = pc.cast(pa.array(rng.integers(1, 400, size=n)), pa.string())
    room = pc.cast(pa.array(rng.integers(1, 30, size=n) * 100 + rng.integers(1, 5, size=n)), pa.string())
    flat = pc.binary_join_element_wise(
        "号", pc.cast(pa.array(rng.integers(1, 20, size=n)), pa.string()), "栋", room, "室", ""
    )
    address = pc.binary_join_element_wise(
        pick(PLACE, n),
        pick(DISTRICT, n),
        pick(ROAD, n),
        number,
        pc.if_else(pa.array(pop.category == d.RES), flat, "号"),
        "",
    )
    return name, phone, address
