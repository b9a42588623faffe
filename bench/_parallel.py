"""Shared by the episode benchmarks: run jobs in this process or a spawn pool, with a progress bar."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence


def run_jobs(run: Callable, jobs: Sequence, init: Callable, initargs: tuple, workers: int) -> list:
    """`run(job)` for every job after `init(*initargs)` in each worker (in process when workers <= 1);
    results in completion order."""
    from tqdm import tqdm

    if workers <= 1:
        init(*initargs)
        return [run(job) for job in tqdm(jobs, desc="episodes", unit="ep")]
    with mp.get_context("spawn").Pool(workers, initializer=init, initargs=initargs) as pool:
        return list(tqdm(pool.imap_unordered(run, jobs), total=len(jobs), desc="episodes", unit="ep"))
