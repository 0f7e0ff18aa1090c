"""Layer store: content-addressed read-only layers, container RW layers, overlay2 and vfs.

Never imports berth.image (images point at layers, not the other way).
"""
from .changes import CHANGE_ADD, CHANGE_DELETE, CHANGE_MODIFY, Change
from .store import Layer, LayerStore, RWLayer, chain_id_of, create_chain_id

__all__ = [
    "CHANGE_ADD",
    "CHANGE_DELETE",
    "CHANGE_MODIFY",
    "Change",
    "Layer",
    "LayerStore",
    "RWLayer",
    "chain_id_of",
    "create_chain_id",
]
