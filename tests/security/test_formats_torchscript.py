"""The TorchScript checks: load-time code refused unread, every operator of every graph allow-listed.

Unit level (no services): the walker finds a file operator hidden in a branch of a function
called by a submodule; the layers a learnware is made of pass; every model the test suite,
the demo and the benchmarks publish passes; the client refuses before calling the model.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))  # the client is its own distribution
from lwm_client.errors import UnsafeArtifactError  # noqa: E402
from lwm_client.predict import Predictor, load_model  # noqa: E402

from specs.packaging import InvalidPackageError, package_inspect  # noqa: E402
from specs.packaging.torchscript import (  # noqa: E402
    allowed_operators,
    check_script_module,
    check_torchscript_archive,
    load_torchscript,
)
from tests.support import hostile_packages as hostile  # noqa: E402
from tests.support import packages  # noqa: E402


def _loaded(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


def _refusal(module: torch.jit.ScriptModule) -> InvalidPackageError:
    with pytest.raises(InvalidPackageError) as caught:
        check_script_module(_loaded(module))
    return caught.value


def test_a_file_operator_in_a_branch_of_a_function_called_by_a_submodule_is_named(tmp_path):
    error = _refusal(torch.jit.script(hostile.FromFileModel(str(tmp_path / "x"))))
    assert error.code == "upload:user:unsafe-operator"
    assert error.details["operator"] == "aten::from_file"
    assert error.details["where"].endswith(".forward")
    assert not (tmp_path / "x").exists()


def test_a_file_operator_in_a_method_forward_never_calls_is_still_refused():
    class Dormant(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

        @torch.jit.export
        def later(self, x: torch.Tensor) -> torch.Tensor:
            torch.save(x, "/tmp/never")
            return x

    error = _refusal(torch.jit.script(Dormant()))
    assert (error.details["operator"], error.details["where"]) == ("aten::save", "<root>.later")


@pytest.mark.parametrize(
    ("module", "operator"),
    [(hostile.SaveModel("/tmp/x"), "aten::save"), (hostile.PrintModel(), "prim::Print")],
)
def test_writing_and_printing_operators_are_refused(module, operator):
    assert _refusal(torch.jit.script(module)).details["operator"] == operator


def test_a_custom_extension_operator_is_refused_by_its_namespace():
    library = torch.library.Library("lwmtest", "DEF")  # noqa: TOR901 - a throwaway op for this test only
    library.define("leak(Tensor x) -> Tensor")
    library.impl("leak", lambda x: x, "CompositeExplicitAutograd")

    class Custom(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ops.lwmtest.leak(x)

    assert _refusal(torch.jit.script(Custom())).details["operator"] == "lwmtest::leak"


def test_a_forward_hook_with_a_file_operator_is_refused():
    error = _refusal(torch.jit.script(hostile.hooked_model()))
    assert error.details["operator"] == "aten::save" and "<hook" in error.details["where"]


def test_a_compiled_class_method_no_one_calls_is_still_walked_when_loading():
    raw = hostile.scripted(hostile.StashHolder())
    check_script_module(torch.jit.load(io.BytesIO(raw)))  # reachable code alone is clean...
    with pytest.raises(
        InvalidPackageError
    ) as caught:  # ...but every function compiled from the archive is walked
        load_torchscript(raw)
    assert caught.value.details["operator"] == "aten::save" and caught.value.details["where"].endswith(
        "Stash.dump"
    )


def test_an_interface_call_that_cannot_be_resolved_is_refused():
    assert (
        _refusal(torch.jit.script(hostile.InterfaceModel()))
        .details["operator"]
        .startswith("prim::CallMethod")
    )


def test_setstate_is_refused_before_torch_jit_load_runs_it():
    marker = hostile.marker_path()
    raw = hostile.scripted(hostile.SetstateModel(str(marker)))
    marker.unlink(missing_ok=True)  # scripting may have run it on our side; only loading matters
    with pytest.raises(InvalidPackageError) as caught:
        load_torchscript(raw)
    assert (
        caught.value.code == "upload:user:load-time-code"
        and caught.value.details["operator"] == "__setstate__"
    )
    assert hostile.markers_left(marker) == []


SEQ, BATCH = 5, 2


def _first(out: object) -> np.ndarray:
    while isinstance(out, (tuple, list)):
        out = out[0]
    assert isinstance(out, torch.Tensor)
    return out.detach().numpy()


COMMON_LAYERS = {
    "linear": (lambda: torch.nn.Linear(4, 3), (torch.zeros(BATCH, 4),)),
    "mlp": (
        lambda: torch.nn.Sequential(
            torch.nn.Linear(4, 8),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(8, 3),
            torch.nn.Softmax(1),
        ),
        (torch.zeros(BATCH, 4),),
    ),
    "conv-bn": (
        lambda: torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3, padding=1),
            torch.nn.BatchNorm2d(4),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(4, 2),
        ),
        (torch.zeros(BATCH, 3, 8, 8),),
    ),
    "layernorm-gelu": (
        lambda: torch.nn.Sequential(
            torch.nn.LayerNorm(6), torch.nn.GELU(), torch.nn.Tanh(), torch.nn.LogSoftmax(1)
        ),
        (torch.zeros(BATCH, 6),),
    ),
    "embedding": (lambda: torch.nn.Embedding(10, 4), (torch.zeros(BATCH, SEQ, dtype=torch.long),)),
    "attention": (
        lambda: torch.nn.MultiheadAttention(8, 2, batch_first=True),
        (torch.zeros(BATCH, SEQ, 8),) * 3,
    ),
    "transformer": (
        lambda: torch.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True),
        (torch.zeros(BATCH, SEQ, 8),),
    ),
    "gru": (lambda: torch.nn.GRU(4, 6, batch_first=True), (torch.zeros(BATCH, SEQ, 4),)),
    "lstm": (lambda: torch.nn.LSTM(4, 6, batch_first=True), (torch.zeros(BATCH, SEQ, 4),)),
}


@pytest.mark.parametrize("how", ["script", "trace"])
@pytest.mark.parametrize("layer", sorted(COMMON_LAYERS))
def test_common_layers_pass_scripted_and_traced(layer, how):
    make, example = COMMON_LAYERS[layer]
    module = make().eval()
    compiled = (
        torch.jit.script(module) if how == "script" else torch.jit.trace(module, example, check_trace=False)
    )
    buffer = io.BytesIO()
    torch.jit.save(compiled, buffer)
    loaded = load_torchscript(
        buffer.getvalue()
    )  # every check: archive bytes, every compiled function, every method
    if not hasattr(loaded, "forward"):  # scripted GRU/LSTM keep only their overloads (forward__0, forward__1)
        assert {"forward__0", "forward__1"} <= set(loaded._c._method_names())
        return
    with torch.no_grad():
        assert_allclose(_first(loaded(*example)), _first(module(*example)), rtol=1e-5, atol=1e-6)


def test_the_sandbox_test_models_pass_so_their_limits_are_what_stops_them():
    for module in (packages.Crash(), packages.Hang(), packages.Hog()):
        load_torchscript(packages.torchscript_bytes(module))


def test_every_model_the_suite_demo_and_benchmarks_publish_passes():
    from demo import trainers
    from tests.support import image_market, market

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), rng.integers(0, 2, 40)
    images = rng.random((40, 64))
    digits = rng.integers(0, 10, 40)
    models = {
        "packages.linear": packages.linear_model_bytes(3, 2),
        "packages.conv": packages.conv_model_bytes((1, 8, 8), 3),
        "demo.table_classifier": trainers.table_classifier(X, y, 2),
        "demo.table_regressor": trainers.table_regressor(X, X[:, 0]),
        "market.train_model": market.train_model(images, digits, epochs=1),
        "image_market.train_model": image_market.train_model(images, digits, epochs=1),
    }
    models["image_market.conv_model"] = image_market.conv_model(models["image_market.train_model"])
    models["demo.image_classifier"] = trainers.image_classifier(
        images.reshape(40, 1, 8, 8).astype(np.float32), digits, 10
    )
    models["demo.text_head"] = trainers.text_head(rng.standard_normal((40, 384)), y, 2)
    for name, raw in models.items():  # the benchmarks publish these same builders' models
        load_torchscript(raw, name)


def test_the_allow_list_holds_no_file_storage_process_or_printing_operator():
    ops = allowed_operators()
    forbidden = [
        op
        for op in ops
        if any(
            word in op
            for word in ("file", "save", "load", "storage", "Print", "fork", "seed", "rng", "thread")
        )
    ]
    assert forbidden == []
    assert {op.split("::", 1)[0] for op in ops} == {"aten", "prim"}


# --- the client ----------------------------------------------------------------------------------
def test_the_client_refuses_a_file_reading_model_before_calling_it():
    marker = hostile.marker_path()
    raw = hostile.scripted(hostile.FromFileModel(str(marker)))
    with pytest.raises(UnsafeArtifactError) as caught:
        load_model(raw, "torchscript")
    assert caught.value.code == "predict:user:unsafe-artifact"
    assert (
        caught.value.details["check"] == "upload:user:unsafe-operator"
        and caught.value.details["operator"] == "aten::from_file"
    )
    with pytest.raises(UnsafeArtifactError):
        Predictor.from_bytes(hostile.table_package(raw, name="reader"))
    assert hostile.markers_left(marker) == []


def test_the_client_refuses_setstate_without_loading():
    marker = hostile.marker_path()
    raw = hostile.scripted(hostile.SetstateModel(str(marker)))
    marker.unlink(missing_ok=True)
    with pytest.raises(UnsafeArtifactError) as caught:
        Predictor.from_bytes(hostile.table_package(raw, name="setstate"))
    assert caught.value.details["check"] == "upload:user:load-time-code"
    assert hostile.markers_left(marker) == []


def test_an_archive_that_python_and_torch_would_read_differently_is_refused():
    raw = packages.linear_model_bytes(3, 2)
    load_torchscript(raw)
    with pytest.raises(
        InvalidPackageError
    ) as caught:  # zipfile shifts past prepended bytes, torch's reader does not
        check_torchscript_archive(b"\0" * 64 + raw)
    assert caught.value.code == "upload:user:artifact-format"


def test_the_upload_check_refuses_setstate_and_custom_classes_in_the_web_process():
    raw = hostile.scripted(hostile.SetstateModel("/tmp/unused"))
    with pytest.raises(InvalidPackageError) as caught:
        package_inspect(hostile.table_package(raw, name="setstate"))
    assert caught.value.code == "upload:user:load-time-code"
    archive = packages.zip_bytes(
        {
            "archive/code/__torch__.py": "class M(Module):\n  pass\n",
            "archive/data.pkl": b"\x80\x02c__torch__.torch.classes.evil\nX\n.",
        }
    )
    with pytest.raises(InvalidPackageError) as caught:
        check_torchscript_archive(archive)
    assert caught.value.details["operator"] == "torch.classes"
