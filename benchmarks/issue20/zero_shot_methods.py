"""Issue 20: every label-free method on a market's two-domain users, through the real pipeline.

For each two-domain user of ``benchmarks/reuse_markets.py --quick`` (raw units, the given seeds)
the user's rows are submitted without labels once as they are (the label-free choice) and once
per zero-shot method the user allows alone (``requirements={"methods": [m]}``), and each
delivered package is scored on the user's 200 rows beside the oracles the targets use (each true
member alone, the average of the true pair). One JSON line per user, with the choice's evidence.

``--conversion off`` leaves the user's rows in their units for every member; ``snap`` converts
only columns whose factor is beyond ``specs.units.UNIT_TOLERANCE`` (diagnostics: what the
unit conversion costs or gains on a market's raw-units users, whose true factor is 1).

    .venv/bin/python benchmarks/issue20/zero_shot_methods.py --market hotels --seeds 20,21,22
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.markets import developers, load_market, ours  # noqa: E402
from benchmarks.markets import tasks as user_tasks  # noqa: E402

METHODS = ("best_single", "weighted_ensemble", "rkme_job_selector")


def _conversion(mode: str) -> None:
    import workers.pipelines.reuse_shared as shared
    from specs.units import UNIT_TOLERANCE

    original = shared.unit_factor
    if mode == "off":
        shared.unit_factor = lambda ctx: None  # type: ignore[assignment]
    elif mode == "snap":

        def snapped(ctx):  # type: ignore[no-untyped-def]
            f = original(ctx)
            return None if f is None else np.where(np.abs(np.log(f)) <= np.log(UNIT_TOLERANCE), 1.0, f)

        shared.unit_factor = snapped  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--market", default="hotels")
    parser.add_argument("--seeds", default="20")
    parser.add_argument("--conversion", choices=("as-is", "off", "snap"), default="as-is")
    args = parser.parse_args()
    from benchmarks.reuse_quality import setup_django

    with tempfile.TemporaryDirectory() as tmp:
        setup_django(Path(tmp))
        from django.contrib.auth import get_user_model
        from django.test import override_settings

        from marketplace.submissions.models import Submission
        from marketplace.submissions.services import submission_create
        from workers.pipelines.reuse import reuse_run
        from workers.pipelines.reuse_package import PackagePredictor

        _conversion(args.conversion)
        dev = get_user_model().objects.create_user("developer")
        user = get_user_model().objects.create_user("user")
        with override_settings(LWM_SUBMISSION_MAX_ACTIVE=10_000):
            market = load_market(args.market, quick=True)
            by_version, models = developers.publish(dev, market)
            for seed in (int(s) for s in args.seeds.split(",")):
                for task in user_tasks.make_tasks(market, quick=True, seed=seed):
                    if task["kind"] != "mixture" or task["units"] is not None:
                        continue
                    user_tasks.oracle(market, models, task)
                    out = {
                        "seed": seed,
                        "mix": task["mix"],
                        "members": task["member_acc"],
                        "average": task["average_acc"],
                        "target": max(task["best_member"], task["average_acc"]) - 0.01,
                    }
                    for method in (None, *METHODS):
                        s = submission_create(
                            owner=user,
                            requirements={"methods": [method]} if method else None,
                            **ours.user_files(market, task, False),
                        )
                        reuse_run(submission_id=str(s.id), report=lambda *a, **k: None)
                        s = Submission.objects.get(id=s.id)
                        package = PackagePredictor.from_bytes(s.package.open("rb").read())
                        pred = package.predict(ours.package_inputs(market, task))
                        acc = float(np.mean(np.asarray(pred).astype(str) == task["y"]))
                        assemble = s.results.get("assemble") or {}
                        if method is None:
                            out["choice"] = {"method": assemble.get("chosen"), "accuracy": acc}
                            out["evidence"] = assemble.get("label_free")
                        else:
                            out[method] = acc
                    print(json.dumps(out, default=float), flush=True)


if __name__ == "__main__":
    main()
