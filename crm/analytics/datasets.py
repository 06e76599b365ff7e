"""Public data sets for evaluation, read from the packages that ship them.

CDNOW (Fader, Hardie & Lee): every purchase of the 23,570 customers who first bought from
CDNOW in the first quarter of 1997, up to the end of June 1998. The ``lifetimes`` package
ships the master file; it is read by path because importing ``lifetimes.datasets`` fails
with setuptools >= 81 (it imports ``pkg_resources``).
"""

from __future__ import annotations

import csv
import importlib.util
import io
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from crm.services.errors import CRMError

# The Fader-Hardie-Lee split: 39 weeks of calibration (to 1997-09-30), 39 weeks of holdout.
CDNOW_CUTOFF = datetime(1997, 10, 1, tzinfo=UTC)
CDNOW_HOLDOUT_END = datetime(1998, 7, 1, tzinfo=UTC)


def cdnow_master_path() -> Path:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise CRMError(
            "The CDNOW data set comes with the lifetimes package, which is not installed.",
            hint='Install the evaluation extra: pip install "crmbot[eval]".',
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"
    if not path.is_file():
        raise CRMError(f"The lifetimes package has no CDNOW master file at {path}.")
    return path


def load_cdnow(path: Path | None = None) -> pd.DataFrame:
    """customer_id (str), date (datetime64), cds (int), amount (float): one row per purchase."""
    frame = pd.read_csv(
        path or cdnow_master_path(),
        sep=r"\s+",
        header=0,
        names=["customer_id", "date", "cds", "amount"],
        dtype={"customer_id": str, "date": str},
    )
    frame["date"] = pd.to_datetime(frame["date"], format="%Y%m%d")
    return frame


def cdnow_transactions_csv(frame: pd.DataFrame | None = None) -> io.StringIO:
    """The CDNOW purchases as a transactions CSV for ``importer.import_transactions``."""
    frame = load_cdnow() if frame is None else frame
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["customer_id", "date", "amount", "currency", "name"])
    for cid, day, amount in zip(
        frame["customer_id"], frame["date"].dt.strftime("%Y-%m-%d"), frame["amount"], strict=True
    ):
        writer.writerow([f"cdnow-{cid}", day, f"{amount:.2f}", "USD", f"CDNOW customer {cid}"])
    out.seek(0)
    return out


# The Hillstrom e-mail test (Kevin Hillstrom, MineThatData, 2008): 64,000 customers who bought
# in the last year, randomly given a men's e-mail, a women's e-mail or none, and what they did
# in the two weeks after. Committed to the repository with the csv's checksum.
HILLSTROM_SHA256 = "0e5893329d8b93cefecc571777672028290ab69865718020c78c7284f291aece"
HILLSTROM_ARMS = ("Mens E-Mail", "Womens E-Mail", "No E-Mail")


def hillstrom_path() -> Path:
    return Path(__file__).resolve().parents[2] / "datasets" / "hillstrom.csv.zip"


def load_hillstrom(path: Path | None = None) -> pd.DataFrame:
    """The Hillstrom rows; CRMError when the file is missing or not the published one."""
    import hashlib
    import zipfile

    path = path or hillstrom_path()
    try:
        with zipfile.ZipFile(path) as archive:
            data = archive.read("hillstrom.csv")
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise CRMError(
            f"Cannot read the Hillstrom data set at {path.name}: {exc}.",
            hint="It is datasets/hillstrom.csv.zip in the crmbot repository; run from a checkout.",
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != HILLSTROM_SHA256:
        raise CRMError(
            f"{path.name} is not the published Hillstrom data (sha256 {digest[:12]}...)."
        )
    return pd.read_csv(io.BytesIO(data))
