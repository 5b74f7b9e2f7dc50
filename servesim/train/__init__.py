"""Training estimates: step time, throughput, memory, time-to-train and cost of 3D/4D/5D-parallel
LLM training, built on the serving cost model's operators and efficiencies (docs/training.md).

``servesim.train(...)`` is both this package and its main function: the package is callable.
"""

from servesim._callable import make_callable
from servesim.train.estimate import TrainEstimate, train
from servesim.train.layout import TrainLayout, make_layout
from servesim.train.search import search_layouts

__all__ = ["TrainEstimate", "TrainLayout", "make_layout", "search_layouts", "train"]

make_callable(__name__, train)
