"""Read ds2-data datasets: length-sorted LMDB shards of Deep Speech 2 log spectrograms.

``ds2data.open(path)`` gives the dataset (manifest fields, splits); ``ds2data.torch`` a
PyTorch Dataset, the SortaGrad batch sampler of ``ds2-data train`` and a CTC collate;
``ds2data.kaldi`` and ``ds2data.lhotse`` export to those tools. The format is
docs/FORMAT.md of the ds2-data repository.
"""

from .dataset import FORMAT_VERSIONS, Dataset, DatasetError, Record, Split, close_all, open, record_statistics
from .batches import batch_plan, epoch_order, seeded_generator

__version__ = "0.1.0"
__all__ = [
    "open", "Dataset", "Split", "Record", "DatasetError", "FORMAT_VERSIONS", "record_statistics", "close_all",
    "batch_plan", "epoch_order", "seeded_generator",
]
