import pytest, json, numpy as np
from django.core.files.base import ContentFile
from marketplace.submissions.services import submission_create
from marketplace.submissions.models import Submission
from workers.pipelines.reuse import reuse_run
from workers.pipelines.reuse_package import PackagePredictor
from tests.support.market import user_task, csv_bytes

@pytest.mark.django_db
def test_try(market, alice, report):
    t = user_task({"mirrored": 0.5, "inverted": 0.5}, n=300, seed=1)
    s = submission_create(owner=alice, data_format="csv", data=ContentFile(csv_bytes(t["X"]), name="d.csv"))
    out = reuse_run(submission_id=str(s.id), report=report)
    s = Submission.objects.get(id=s.id)
    print(json.dumps(s.results["assemble"], indent=1))
    p = PackagePredictor.from_bytes(s.package.open("rb").read())
    pred = p.predict(t["X"])
    print("acc", np.mean(pred.astype(int) == t["y"]))
    print(p.assembly.route(p.transform(t["X"]))[:40])
    from workers.pipelines.reuse_context import unit_rms
    a = market.arrays
    std = a.standardizer
    Xs = (t["X"] / unit_rms(t["X"]) - std.mean_) / std.scale_
    print("diff", np.abs(Xs - p.transform(t["X"])).max(), p.transform.unit_free, np.abs(p.transform.rms - unit_rms(t["X"])).max())
    sel = p.assembly
    print("gamma", sel.gamma_, sel.weights_, sel.Z_.shape, sel.beta_.sum())
    from specs.assembly import RKMEJobSelector
    Zs = [np.asarray(json.loads(a.rkmes[d])["Z"]) for d in ("inverted", "mirrored")]
    print("Zdiff", np.abs(np.vstack(Zs) - sel.Z_).max())
    print(sel.densities(Xs)[:5])
    print("counts", np.bincount(sel.route(Xs), minlength=2), (t["X"][:, 0] > 8).sum())
    sel2 = RKMEJobSelector().fit(Zs, [np.asarray(json.loads(a.rkmes[d])["beta"]) for d in ("inverted", "mirrored")], 1/128, np.array([0.5, 0.5]))
    print("counts2", np.bincount(sel2.route(Xs), minlength=2))
    print("beta diff", np.abs(sel2.beta_ - sel.beta_).max(), sel2.owner_[:3], sel.owner_[:3], sel.owner_.dtype)
