"""Runs INSIDE the `learnware` package's own venv (never imports the project): the anchor on one
market's tasks. Input/output are NPZ files (argv[1], argv[2]); see learnware_run.py for the keys.

Per domain: a Learnware whose BaseModel runs the developer's TorchScript model and spreads its
probabilities over the market's union of classes, with its RKMETableSpecification of the
developer's rows (images: flattened pixels; texts: the embeddings, since its text spec would
download an encoder). Per task: identification by EasyStatSearcher (greedy mixture search, as its
easy market does), then, on two-domain users, JobSelectorReuser, AveragingReuser(vote_by_prob)
and FeatureAugmentReuser (fitted on the 50 labelled rows) over the user's true pair."""

import io
import json
import sys
import warnings

warnings.filterwarnings("ignore")
import logging  # noqa: E402

logging.disable(logging.WARNING)
import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
from learnware.learnware import Learnware  # noqa: E402
from learnware.market import BaseUserInfo  # noqa: E402
from learnware.market.easy import EasyStatSearcher  # noqa: E402
from learnware.model import BaseModel  # noqa: E402
from learnware.reuse import AveragingReuser, FeatureAugmentReuser, JobSelectorReuser  # noqa: E402
from learnware.specification import Specification, generate_rkme_table_spec  # noqa: E402

data = np.load(sys.argv[1], allow_pickle=False)
domains = json.loads(str(data["domains"]))
n_classes = int(data["n_classes"])


class Model(BaseModel):
    def __init__(self, raw, class_index, dim):
        super().__init__(input_shape=(dim,), output_shape=(n_classes,))
        self.net = torch.jit.load(io.BytesIO(raw)).eval()
        self.class_index = class_index

    def fit(self, X, y):
        pass

    def finetune(self, X, y):
        pass

    def predict(self, X):
        with torch.no_grad():
            p = torch.softmax(self.net(torch.tensor(np.asarray(X), dtype=torch.float32)), 1).double().numpy()
        full = np.zeros((p.shape[0], n_classes))
        full[:, self.class_index] = p
        return full


learnwares = []
for i in range(len(domains)):
    X = data[f"train_{i}"]
    spec = Specification()
    spec.update_stat_spec(generate_rkme_table_spec(X, reduced_set_size=100))
    learnwares.append(
        Learnware(str(i), Model(data[f"model_{i}"].tobytes(), data[f"classes_{i}"], X.shape[1]), spec, "")
    )

searcher = EasyStatSearcher(organizer=None)
out = {}
for t in range(int(data["n_tasks"])):
    X = data[f"task{t}_X"]
    user = generate_rkme_table_spec(X, reduced_set_size=100)
    result = searcher(
        learnwares,
        BaseUserInfo(stat_info={"RKMETableSpecification": user}),
        max_search_num=5,
        search_method="greedy",
    )
    out[f"task{t}_order"] = np.array(
        [int(item.learnware.id) for item in result.get_single_results()], dtype=np.int64
    )
    multiple = result.get_multiple_results()
    out[f"task{t}_mixture"] = np.array(
        [int(lw.id) for lw in multiple[0].learnwares] if multiple else [], dtype=np.int64
    )
    if f"task{t}_members" not in data.files:
        continue
    members = [learnwares[i] for i in data[f"task{t}_members"]]
    makers = (
        ("job_selector", JobSelectorReuser, {"use_herding": False}),
        ("averaging", AveragingReuser, {"mode": "vote_by_prob"}),
        ("feature_augment", FeatureAugmentReuser, {"mode": "classification"}),
    )
    for name, make, kwargs in makers:
        try:
            reuser = make(members, **kwargs)
            if name == "feature_augment":
                reuser.fit(data[f"task{t}_Xl"], data[f"task{t}_yl"])
            pred = np.asarray(reuser.predict(X))
        except Exception as exc:  # noqa: BLE001 - the anchor's failure is a figure
            out[f"task{t}_{name}_error"] = np.array(f"{type(exc).__name__}: {exc}"[:300])
            continue
        out[f"task{t}_{name}"] = (pred.argmax(1) if pred.ndim == 2 else pred).astype(np.int64)
np.savez(sys.argv[2], **out)
