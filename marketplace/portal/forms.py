"""Forms of the portal's learnware, search and submission pages (account forms:
marketplace.accounts.forms)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from django import forms


# --- learnwares ------------------------------------------------------------------------------
def _license_choices() -> list[tuple[str, str]]:
    from specs.packaging.manifest import KNOWN_LICENSES

    return [(name, name) for name in sorted(KNOWN_LICENSES)]


class PackageUploadForm(forms.Form):
    package = forms.FileField(
        help_text="A .zip with learnware.yaml, the model or adapter, and rkme.json or a data sample.",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )

    def clean_package(self) -> object:
        package = self.cleaned_data["package"]
        if not package.name.lower().endswith(".zip"):
            raise forms.ValidationError(f"{package.name}: a learnware package is a .zip file.")
        if package.size == 0:
            raise forms.ValidationError(f"{package.name} is empty.")
        return package


class CardForm(forms.Form):
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12}),
        required=False,
        max_length=20_000,
        help_text="Markdown. Scripts, styles and unsafe links are removed when shown.",
    )
    tags = forms.CharField(required=False, max_length=2000, help_text="Comma-separated, at most 30.")
    license = forms.ChoiceField(choices=_license_choices)
    visibility = forms.ChoiceField(choices=[("public", "Public"), ("private", "Private (only you)")])

    def clean_tags(self) -> list[str]:
        tags = [t.strip() for t in self.cleaned_data["tags"].split(",") if t.strip()]
        if len(tags) > 30:
            raise forms.ValidationError(f"At most 30 tags, got {len(tags)}.")
        if any(len(t) > 200 for t in tags):
            raise forms.ValidationError("A tag has at most 200 characters.")
        return tags


# --- search by data -------------------------------------------------------------------------
def parse_column_map(text: str) -> dict[str, str]:
    """``"yours=theirs, a=b"`` (commas or new lines) -> ``{"yours": "theirs", "a": "b"}``; a bad pair is
    named."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.replace("\n", ",").split(",")):
        if not part:
            continue
        yours, sep, theirs = (s.strip() for s in part.partition("="))
        if not sep or not yours or not theirs:
            raise forms.ValidationError(f"{part!r}: write each rename as your_name=learnware_name")
        if yours in out:
            raise forms.ValidationError(f"{yours!r} is renamed twice")
        out[yours] = theirs
    targets = list(out.values())
    doubled = sorted({t for t in targets if targets.count(t) > 1})
    if doubled:
        raise forms.ValidationError(f"two columns are renamed to {doubled[0]!r}")
    return out


def format_column_map(renames: Iterable[Mapping[str, Any]]) -> str:
    """Suggested renames (``{"yours", "theirs", ...}``) as the text ``parse_column_map`` reads back:
    ``"yours=theirs, a=b"`` — what the portal's "Use these renames" puts in the field."""
    return ", ".join(f"{r['yours']}={r['theirs']}" for r in renames)


class DataSearchForm(forms.Form):
    file = forms.FileField(
        help_text="A CSV (with its header row), an NPZ with an array X (rows, or images n×C×H×W), "
        "raw texts (.txt, one per line, or .jsonl), or an rkme.json.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.npz,.json,.txt,.jsonl"}),
    )
    feature_space = forms.ChoiceField(
        required=False,
        label="Feature space",
        help_text="Detected from your file; choose only when it fits several spaces.",
    )
    k = forms.IntegerField(min_value=1, max_value=50, initial=10, label="Results")
    column_map = forms.CharField(
        required=False,
        label="Rename columns",
        max_length=4000,
        help_text="Columns are matched by name, in any order; extra ones are ignored. "
        "Rename yours to the learnwares' names: departure_delay=dep_delay, dist=distance",
    )

    def __init__(self, *args: object, spaces: list[tuple[str, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        cast(forms.ChoiceField, self.fields["feature_space"]).choices = [("", "Detect from my file")] + spaces

    def clean_column_map(self) -> dict[str, str]:
        return parse_column_map(self.cleaned_data.get("column_map", ""))

    def clean_file(self) -> object:
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith((".csv", ".npz", ".json", ".txt", ".jsonl")):
            raise forms.ValidationError(f"{upload.name}: use a .csv, .npz, .txt, .jsonl or rkme .json file.")
        return upload


# --- submissions ----------------------------------------------------------------------------
def _method_choices() -> list[tuple[str, str]]:
    from marketplace.submissions.choices import AssemblyMethod

    return list(AssemblyMethod.choices)


class SubmissionForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="Optional, to find it again.")
    task = forms.ChoiceField(choices=[("classification", "Classification"), ("regression", "Regression")])
    modality = forms.ChoiceField(
        choices=[("table", "Table"), ("image", "Images")],
        initial="table",
        required=False,
        help_text="A zip of images is always an image task; choose Images to send an NPZ array images.",
    )
    # A field named like BaseForm.data: the form's metaclass moves it into the declared fields.
    data = forms.FileField(
        help_text="Unlabelled rows: a CSV with a header row, an NPZ with an array X (images: an array "
        "images), "  # type: ignore[assignment]
        "a zip of PNG/JPEG images, or an rkme.json.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.npz,.zip,.json"}),
    )
    labelled = forms.FileField(
        required=False,
        label="Labelled sample",
        help_text="A CSV with the same columns plus a label column, an NPZ with X (or images) and y, "
        "or a zip of images with labels.csv (file, label). "
        "With it the market ranks, assembles and evaluates against baselines.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.npz,.zip"}),
    )
    label_column = forms.CharField(max_length=200, required=False, initial="label")
    licenses = forms.MultipleChoiceField(
        choices=_license_choices,
        required=False,
        label="Allowed licences",
        help_text="Leave empty to allow any licence.",
    )
    max_modules = forms.IntegerField(
        min_value=1, max_value=10, required=False, label="At most this many learnwares"
    )
    methods = forms.MultipleChoiceField(
        choices=_method_choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Assembly methods to try",
        help_text="Leave empty to try every applicable one.",
    )
    holdout_fraction = forms.FloatField(
        min_value=0.1,
        max_value=0.5,
        required=False,
        initial=0.25,
        help_text="Share of the labelled rows held out for the final evaluation.",
    )
    column_map = forms.CharField(
        required=False,
        label="Rename columns",
        max_length=4000,
        help_text="Columns are matched by name, in any order; extra ones are ignored and listed. "
        "Rename yours to the learnwares' names: departure_delay=dep_delay",
    )

    def clean_column_map(self) -> dict[str, str]:
        return parse_column_map(self.cleaned_data.get("column_map", ""))

    def clean_data(self) -> object:
        upload = self.cleaned_data["data"]
        if not upload.name.lower().endswith((".csv", ".npz", ".zip", ".json")):
            raise forms.ValidationError(f"{upload.name}: use a .csv, .npz, .zip (images) or rkme .json file.")
        return upload

    def clean_labelled(self) -> object:
        upload = self.cleaned_data.get("labelled")
        if upload and not upload.name.lower().endswith((".csv", ".npz", ".zip")):
            raise forms.ValidationError(
                f"{upload.name}: the labelled sample is a .csv, .npz or .zip (images) file."
            )
        return upload

    def clean(self) -> dict[str, object]:
        data = super().clean() or self.cleaned_data  # Form.clean returns cleaned_data itself
        names = [f.name.lower() for f in (data.get("data"), data.get("labelled")) if f]
        if any(n.endswith(".zip") for n in names):
            data["modality"] = "image"  # a zip holds images: the image space is the only one it fits
        data["modality"] = data.get("modality") or "table"
        if data["modality"] == "image" and any(n.endswith(".csv") for n in names):
            self.add_error(
                "modality", "A CSV cannot hold images: send a zip of PNG/JPEG images or an NPZ array images."
            )
        return data

    def requirements(self) -> dict[str, object]:
        data = self.cleaned_data
        out: dict[str, object] = {}
        for key in ("licenses", "methods"):
            if data.get(key):
                out[key] = list(data[key])
        for key in ("max_modules", "holdout_fraction"):
            if data.get(key) is not None:
                out[key] = data[key]
        if data.get("labelled") and data.get("label_column"):
            out["label_column"] = data["label_column"].strip()
        if data.get("column_map"):
            out["column_map"] = dict(data["column_map"])
        return out
