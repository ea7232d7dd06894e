from django.db import models


class Kind(models.TextChoices):
    MODEL = "model", "Model"
    ADAPTER = "adapter", "Adapter"
    BASE_MODEL = "base_model", "Base model"


class Modality(models.TextChoices):
    TABLE = "table", "Table"
    IMAGE = "image", "Image"
    TEXT = "text", "Text"


class Task(models.TextChoices):
    CLASSIFICATION = "classification", "Classification"
    REGRESSION = "regression", "Regression"
    EMBEDDING = "embedding", "Embedding"


class Visibility(models.TextChoices):
    PUBLIC = "public", "Public"
    PRIVATE = "private", "Private (owner only)"
    ORGANIZATION = "organization", "Organisation"


class ArtifactFormat(models.TextChoices):
    TORCHSCRIPT = "torchscript", "TorchScript (.pt)"
    TORCH_EXPORT = "torch_export", "torch.export (.pt2)"
    PEFT_LORA = "peft_lora", "PEFT LoRA (safetensors)"
    ASSEMBLY = "assembly", "Assembly recipe"
    ONNX = "onnx", "ONNX (.onnx, ONNX Runtime)"
    HF_SAFETENSORS = "hf_safetensors", "Hugging Face folder (safetensors)"


class VersionStatus(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded"
    VALIDATING = "validating", "Validating"
    PENDING_REVIEW = "pending_review", "Pending review"
    PUBLISHED = "published", "Published"
    REJECTED = "rejected", "Rejected"
    YANKED = "yanked", "Yanked"


VISIBLE_VERSION_STATES = (VersionStatus.PUBLISHED,)
TERMINAL_VERSION_STATES = (VersionStatus.PUBLISHED, VersionStatus.REJECTED, VersionStatus.YANKED)
