"""An independent transaction generator, after the design of the *Reproducible Machine Learning for
Credit Card Fraud Detection* handbook (Le Borgne et al.) — written separately from
``producer.simulator`` so ``ml.evaluate`` can be checked on data it was not built around.

Customers and terminals sit uniformly on a 100 x 100 grid; a customer uses the terminals within
``radius``; amounts are normal (mean 5–100, std mean/2); 0–4 transactions a day around noon.
Fraud scenarios: (1) any amount above 220; (2) each day two terminals are compromised and all
their transactions in the next 28 days are fraud; (3) each day three customers are compromised
and a third of their transactions over the next 14 days get 5x amounts and are fraud.

Output has only the documented required columns (``transaction_id, event_time, card_id,
terminal_id, amount, is_fraud``) with integer ids, like the handbook's files, plus the scenario
number when ``with_scenario`` is set. Usage::

    python tests/unit/ml/handbook_sim.py --out /tmp/handbook.parquet   # 5000 customers, 183 days
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def generate(
    n_customers: int = 5000,
    n_terminals: int = 10000,
    days: int = 183,
    radius: float = 5.0,
    seed: int = 0,
    start: str = "2018-04-01",
    with_scenario: bool = False,
    terminals_per_day: float | None = None,
    customers_per_day: float | None = None,
) -> pd.DataFrame:
    """Handbook defaults: 2 compromised terminals and 3 compromised customers a day for 10,000
    terminals and 5,000 customers; smaller worlds get proportionally fewer (Poisson per day)."""
    terminals_per_day = 2 * n_terminals / 10_000 if terminals_per_day is None else terminals_per_day
    customers_per_day = 3 * n_customers / 5_000 if customers_per_day is None else customers_per_day
    rng = np.random.default_rng(seed)
    cx, cy = rng.uniform(0, 100, n_customers), rng.uniform(0, 100, n_customers)
    mean_amount = rng.uniform(5, 100, n_customers)
    std_amount = mean_amount / 2
    rate = rng.uniform(0, 4, n_customers)
    tx, ty = rng.uniform(0, 100, n_terminals), rng.uniform(0, 100, n_terminals)

    # terminals within the radius of each customer, as a ragged array
    lists: list[np.ndarray] = []
    for lo in range(0, n_customers, 500):
        d2 = (cx[lo : lo + 500, None] - tx[None, :]) ** 2 + (cy[lo : lo + 500, None] - ty[None, :]) ** 2
        lists.extend(np.flatnonzero(row < radius**2) for row in d2)
    n_avail = np.array([len(a) for a in lists])
    offsets = np.concatenate([[0], np.cumsum(n_avail)[:-1]])
    flat = np.concatenate(lists) if lists else np.array([], dtype=np.int64)

    counts = rng.poisson(rate[:, None], size=(n_customers, days))
    counts[n_avail == 0] = 0
    pair = np.repeat(np.arange(counts.size), counts.ravel())
    cust, day = pair // days, pair % days
    secs = rng.normal(86400 / 2, 20000, len(cust))
    keep = (secs > 0) & (secs < 86400)
    cust, day, secs = cust[keep], day[keep], secs[keep].astype(np.int64)
    amount = rng.normal(mean_amount[cust], std_amount[cust])
    neg = amount < 0
    amount[neg] = rng.uniform(0, mean_amount[cust[neg]] * 2)
    amount = np.round(amount, 2)
    term = flat[offsets[cust] + (rng.random(len(cust)) * n_avail[cust]).astype(np.int64)]
    t_seconds = day * 86400 + secs
    order = np.argsort(t_seconds, kind="stable")
    cust, day, term, amount, t_seconds = cust[order], day[order], term[order], amount[order], t_seconds[order]

    scenario = np.zeros(len(cust), dtype=np.int8)
    scenario[amount > 220] = 1
    by_term = np.argsort(term, kind="stable")
    t_bounds = np.searchsorted(term[by_term], np.arange(n_terminals + 1))

    def per_day(rate: float) -> int:
        return int(rate) if float(rate).is_integer() else int(rng.poisson(rate))

    for d in range(days):
        for t in rng.choice(n_terminals, per_day(terminals_per_day), replace=False):
            rows = by_term[t_bounds[t] : t_bounds[t + 1]]
            hit = rows[(day[rows] >= d) & (day[rows] < d + 28)]
            scenario[hit] = np.where(scenario[hit] == 0, 2, scenario[hit])
    by_cust = np.argsort(cust, kind="stable")
    c_bounds = np.searchsorted(cust[by_cust], np.arange(n_customers + 1))
    for d in range(days):
        for c in rng.choice(n_customers, per_day(customers_per_day), replace=False):
            rows = by_cust[c_bounds[c] : c_bounds[c + 1]]
            rows = rows[(day[rows] >= d) & (day[rows] < d + 14)]
            chosen = rng.choice(rows, len(rows) // 3, replace=False) if len(rows) >= 3 else rows[:0]
            amount[chosen] = np.round(amount[chosen] * 5, 2)
            scenario[chosen] = 3

    out = pd.DataFrame(
        {
            "transaction_id": np.arange(len(cust)),
            "event_time": pd.Timestamp(start) + pd.to_timedelta(t_seconds, unit="s"),
            "card_id": cust,
            "terminal_id": term,
            "amount": amount,
            "is_fraud": (scenario > 0).astype(np.int64),
        }
    )
    if with_scenario:
        out["scenario"] = scenario
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--days", type=int, default=183)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    df = generate(args.customers, args.terminals, args.days, seed=args.seed)
    if args.out.endswith(".csv"):
        df.to_csv(args.out, index=False)
    else:
        df.to_parquet(args.out, index=False)
    print(
        f"{len(df)} transactions, fraud rate {df.is_fraud.mean():.4f}, "
        f"{time.perf_counter() - started:.1f}s -> {args.out}"
    )


if __name__ == "__main__":
    main()
