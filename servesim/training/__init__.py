"""Training estimates: step time, throughput, memory, time-to-train and cost of 3D/4D/5D-parallel
LLM training, built on the serving cost model's operators and efficiencies (docs/training.md).

``servesim.train(...)`` is this package's main function (re-exported lazily by servesim).
"""

from servesim.training.config import load_train_config
from servesim.training.estimate import TrainEstimate, train
from servesim.training.layout import TrainLayout, make_layout
from servesim.training.search import search_layouts

__all__ = [
    "TrainEstimate", "TrainLayout", "load_train_config", "make_layout", "search_layouts", "train"
]  # fmt: skip
