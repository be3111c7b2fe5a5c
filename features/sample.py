"""A stable share of the customers, for training sets a province is too large to hold in memory.

A training set stacks the population at every as-of date: a million customers over 36 months is some 30 M
rows, more than one machine can train on. `CustomerSample` keeps a share of the customers at the dates a model
learns and validates on, and every customer at the latest dates (the test window), so the evaluation, the
per-station visit capacity and the champion gate still read the whole population.

Whole customers are kept or dropped, never single rows: a kept customer has all its dates, so the purged
splits and the as-of history of each row are the same as in the full set. Membership is a keyed hash of the
customer id (pandas' SipHash), so the same ids, share and seed give the same customers on any machine, in
either engine and in every partition. The peer features are not sampled: they are computed over every active
customer before the population is cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

SEED_LIMIT = 10**8  # the hash key holds 8 digits of the seed: seeds 0 and 10**8 would draw the same customers


def members(ids: np.ndarray | pd.Series, share: float, seed: int = 0) -> np.ndarray:
    """True for the ids in the sample: a keyed 64-bit hash of the id, read in [0, 1), below `share`."""
    values = np.asarray(ids, dtype=object)
    if share >= 1:
        return np.ones(len(values), dtype=bool)
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"a customer sample's seed must be in [0, {SEED_LIMIT:,}), not {seed}")
    hashed = pd.util.hash_array(values, hash_key=f"gridrisk{seed:08d}", categorize=True)
    return (hashed >> np.uint64(11)).astype(np.float64) / float(2**53) < share


@dataclass(frozen=True)
class CustomerSample:
    """Keep `share` of the customers before `whole_from`; from `whole_from` on (the test dates), keep all."""

    share: float
    whole_from: pd.Timestamp | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ValueError(f"a customer sample's share must be in (0, 1], not {self.share}")

    def sampled(self, as_of: pd.Timestamp) -> bool:
        """Whether the population at `as_of` is cut to the sample (False for the dates kept whole)."""
        return self.share < 1 and (self.whole_from is None or pd.Timestamp(as_of) < self.whole_from)

    def describe(self) -> dict[str, object]:
        return {
            "customers": self.share,
            "seed": self.seed,
            "whole_from": None if self.whole_from is None else self.whole_from.date().isoformat(),
        }


def whole_from(dates, whole_dates: int) -> pd.Timestamp | None:
    """The first of the latest `whole_dates` as-of dates (None when there are none)."""
    ordered = sorted(pd.to_datetime(pd.Series(list(dates))).unique())
    if not ordered or whole_dates < 1:
        return None
    return pd.Timestamp(ordered[-min(whole_dates, len(ordered))])


def sample_for(dates, share: float, seed: int, whole_dates: int) -> CustomerSample | None:
    """The sample of a set over `dates` whose latest `whole_dates` keep everyone; None when nothing is cut."""
    return CustomerSample(share, whole_from(dates, whole_dates), seed) if share < 1 else None


def read_sampled(
    path, sample_share: float, seed: int, whole_dates: int, dates: list[pd.Timestamp] | None = None
) -> tuple[pa.Table, CustomerSample]:
    """A training set's Parquet with the earlier dates cut to the sampled customers, read a batch at a time
    (the peak is the kept rows, not the file). `dates`: only these as-of dates are read, and the latest
    `whole_dates` of them keep every customer (None: every date of the file)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if dates is None:
        as_of = pq.read_table(path, columns=["as_of"]).column("as_of")
        dates = list(pd.DatetimeIndex(pc.unique(as_of).to_pandas()))
        del as_of
        wanted = None
    else:
        wanted = pd.DatetimeIndex(dates)
    sample = CustomerSample(sample_share, whole_from(dates, whole_dates), seed)
    source = pq.ParquetFile(path)
    kept = []
    for batch in source.iter_batches(batch_size=1 << 17):
        keep = members(batch.column("customer_id").to_numpy(zero_copy_only=False), sample.share, sample.seed)
        on = pd.to_datetime(batch.column("as_of").to_numpy(zero_copy_only=False))
        if sample.whole_from is not None:
            keep |= np.asarray(on >= sample.whole_from)
        if wanted is not None:
            keep &= np.asarray(on.normalize().isin(wanted))
        kept.append(batch.filter(pa.array(keep)))
    return pa.Table.from_batches(kept, schema=source.schema_arrow), sample
