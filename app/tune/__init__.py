"""`localrag tune` (issue 23): adapt a collection's embedder to its own documents, offline. The instruct LLM writes
a question per chunk (questions.py), questions the current search cannot place are dropped and hard negatives
picked (mining.py), the embedder is fine-tuned and measured on held-out questions (train.py), and the collection
switches to it only when held-out recall@5 improves (switch.py; `--undo` goes back). run.py holds the stages."""

from localrag.app.tune.run import TuneOptions, TuneParts, TuneReport, tune_collection
from localrag.app.tune.switch import CollectionModel, TuneError, collection_model, revert
from localrag.app.tune.train import TrainSettings

__all__ = ["CollectionModel", "TrainSettings", "TuneError", "TuneOptions", "TuneParts", "TuneReport",
           "collection_model", "revert", "tune_collection"]
