"""Latent drivers: industry operating rates with downturns, each customer's operating level and stress.

A slowing industry (DOMAIN §2 "开工不足") lowers its customers' consumption, raises their payment stress and
their suspension hazard; these latent paths are written to truth/ and never to the contract tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.synthetic import domain as d

# [I] Downturns: a share of industries slows once in the span; depth is the fall in operating rate.
DOWNTURN_SHARE = 0.12
DOWNTURN_DEPTH = (0.25, 0.5)
DOWNTURN_RAMP_MONTHS = 3
DOWNTURN_HOLD_MONTHS = (4, 12)
DOWNTURN_RECOVERY_MONTHS = 6
INDUSTRY_NOISE_SD = 0.025
# Stress: a customer's own level plus an AR(1) path; a downturn adds STRESS_PER_DEPTH × depth × sensitivity.
STRESS_AR = 0.95
STRESS_PATH_SD = 0.55
STRESS_PER_DEPTH = 5.0
CATEGORY_STRESS = np.array([0.0, 0.15, -0.1, 0.25])
# Farm income arrives after the harvest (DOMAIN §4, UHBVN): agricultural stress rises in the growing months.
AGRI_PREHARVEST_MONTHS = (4, 5, 6, 7, 8)
AGRI_PREHARVEST_STRESS = 0.6
# A business's own cycle moves its operating level; stress shows up as a small drop in consumption.
OWN_CYCLE_SD = 0.05
STRESS_ON_OUTPUT = 0.05


@dataclass
class Industries:
    operating_rate: np.ndarray  # (industries, months)
    downturn_depth: np.ndarray  # (industries, months), 0 outside downturns


def industry_conditions(months: int, rng: np.random.Generator) -> Industries:
    n = len(d.INDUSTRIES)
    noise = np.zeros((n, months))
    shock = rng.normal(0.0, INDUSTRY_NOISE_SD, size=(n, months))
    for m in range(1, months):
        noise[:, m] = 0.7 * noise[:, m - 1] + shock[:, m]
    depth = np.zeros((n, months))
    candidates = np.flatnonzero(d.INDUSTRY_CATEGORY != d.AGR)
    industrial = np.flatnonzero(d.INDUSTRY_CATEGORY == d.IND)
    hit = rng.random(candidates.shape[0]) < DOWNTURN_SHARE
    chosen = set(candidates[hit].tolist())
    # Every run has downturns in at least two industrial and one commercial industry to learn from.
    chosen |= set(rng.choice(industrial, size=2, replace=False).tolist())
    chosen.add(int(rng.choice(np.flatnonzero(d.INDUSTRY_CATEGORY == d.COM))))
    t = np.arange(months)
    for i in sorted(chosen):
        start = int(rng.integers(2, max(3, months - 12)))
        hold = int(rng.integers(*DOWNTURN_HOLD_MONTHS))
        peak = rng.uniform(*DOWNTURN_DEPTH)
        ramp_end = start + DOWNTURN_RAMP_MONTHS
        recover_start = ramp_end + hold
        shape = np.clip((t - start + 1) / DOWNTURN_RAMP_MONTHS, 0.0, 1.0)
        shape = np.where(
            t >= recover_start,
            np.clip(1 - (t - recover_start + 1) / DOWNTURN_RECOVERY_MONTHS, 0.0, 1.0),
            shape,
        )
        depth[i] = peak * shape
    return Industries(operating_rate=np.clip(1.0 + noise - depth, 0.2, 1.2), downturn_depth=depth)


@dataclass
class Drivers:
    stress: np.ndarray  # (customers, months) latent financial stress, ~N(0, 1.2) outside downturns
    stress_level: np.ndarray  # (customers,) the customer's own level
    operating_level: np.ndarray  # (customers, months) output relative to normal (1 = normal)
    sensitivity: np.ndarray  # (customers,) exposure to the industry cycle
    downturn: np.ndarray  # (customers, months) the industry's downturn depth felt by the customer


def customer_drivers(
    category: np.ndarray,
    industry: np.ndarray,
    month_of_year: np.ndarray,
    industries: Industries,
    rng: np.random.Generator,
) -> Drivers:
    n = category.shape[0]
    months = month_of_year.shape[0]
    level = rng.normal(CATEGORY_STRESS[category], 1.0)
    path = np.empty((n, months))
    innovation_sd = STRESS_PATH_SD * np.sqrt(1 - STRESS_AR**2)
    path[:, 0] = rng.normal(0.0, STRESS_PATH_SD, size=n)
    for m in range(1, months):
        path[:, m] = STRESS_AR * path[:, m - 1] + rng.normal(0.0, innovation_sd, size=n)
    has_industry = industry >= 0
    ind = np.where(has_industry, industry, 0)
    sensitivity = np.where(
        category == d.IND,
        rng.uniform(0.6, 1.4, size=n),
        np.where(category == d.COM, rng.uniform(0.3, 1.0, size=n), np.where(category == d.AGR, 0.3, 0.0)),
    )
    downturn = np.where(has_industry[:, None], industries.downturn_depth[ind], 0.0) * sensitivity[:, None]
    stress = level[:, None] + path + STRESS_PER_DEPTH * downturn
    preharvest = np.isin(month_of_year, AGRI_PREHARVEST_MONTHS)
    stress += np.where((category == d.AGR)[:, None] & preharvest[None, :], AGRI_PREHARVEST_STRESS, 0.0)

    rate = np.where(has_industry[:, None], industries.operating_rate[ind], 1.0)
    own = np.empty((n, months))
    own[:, 0] = rng.normal(0.0, OWN_CYCLE_SD, size=n)
    for m in range(1, months):
        own[:, m] = 0.8 * own[:, m - 1] + rng.normal(0.0, OWN_CYCLE_SD * 0.6, size=n)
    business = (category != d.RES)[:, None]
    operating = np.where(
        business,
        rate ** sensitivity[:, None] * np.exp(own - STRESS_ON_OUTPUT * path),
        1.0,
    )
    return Drivers(
        stress=stress,
        stress_level=level,
        operating_level=operating,
        sensitivity=sensitivity,
        downturn=downturn,
    )
