"""Usage counters shown on cards and used to rank "most reused": single UPDATEs with F(), so
concurrent downloads and tasks never lose an increment (no read-modify-write)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import F

from marketplace.learnwares.models import Learnware


def learnware_downloaded(*, learnware_id: int) -> None:
    """One more download of one of this learnware's packages."""
    Learnware.objects.filter(id=learnware_id).update(download_count=F("download_count") + 1)


def learnwares_reused(*, version_ids: Iterable[int]) -> int:
    """One more reuse for each learnware with a version among ``version_ids`` (a task assembled it)."""
    ids = {int(v) for v in version_ids}
    if not ids:
        return 0
    return Learnware.objects.filter(versions__id__in=ids).distinct().update(reuse_count=F("reuse_count") + 1)
