"""Architecture specs: frozen, validated, JSON-serialisable DAGs of layers. Imports no torch."""

from optuna_nas.spec._canonical import canonical_form
from optuna_nas.spec._canonical import canonical_hash
from optuna_nas.spec._ops import ACTIVATIONS
from optuna_nas.spec._ops import OPS
from optuna_nas.spec._ops import Arity
from optuna_nas.spec._ops import OpDef
from optuna_nas.spec._ops import Role
from optuna_nas.spec._ops import get_op
from optuna_nas.spec._spec import FORMAT_VERSION
from optuna_nas.spec._spec import ArchitectureSpec
from optuna_nas.spec._spec import Node
from optuna_nas.spec._spec import spec_from_layers

__all__ = [
    "ACTIVATIONS",
    "FORMAT_VERSION",
    "OPS",
    "ArchitectureSpec",
    "Arity",
    "Node",
    "OpDef",
    "Role",
    "canonical_form",
    "canonical_hash",
    "get_op",
    "spec_from_layers",
]
