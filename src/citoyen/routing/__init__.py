"""Stakeholders and routing rules: configuration, validation and the pure routing table.

``config/stakeholders.yaml`` says who acts (a kind, an area, on-call addresses);
``config/routing.yaml`` says which reports go to whom, how long they have to acknowledge and who
is next when nobody does (docs/routing.md). This package reads and checks both files and
resolves a report's category, area and urgency into stakeholders, without a database or a clock;
:mod:`citoyen.services.queues` turns that into queue entries, alerts and notifications.
"""

from citoyen.routing.areas import AreaInfo, AreaTree
from citoyen.routing.checker import RoutingError, check, flow_categories, load_routing
from citoyen.routing.schema import (
    CLOSE_REASONS,
    KINDS,
    NOTIFIABLE,
    STATUSES,
    URGENCIES,
    Nearest,
)
from citoyen.routing.table import (
    Escalation,
    Resolution,
    Route,
    RoutingConfig,
    Rule,
    StakeholderDef,
    expand,
    nearest,
    next_escalation,
    resolve,
    select_rule,
)

__all__ = [
    "CLOSE_REASONS",
    "KINDS",
    "NOTIFIABLE",
    "STATUSES",
    "URGENCIES",
    "AreaInfo",
    "AreaTree",
    "Escalation",
    "Nearest",
    "Resolution",
    "Route",
    "RoutingConfig",
    "RoutingError",
    "Rule",
    "StakeholderDef",
    "check",
    "expand",
    "flow_categories",
    "load_routing",
    "nearest",
    "next_escalation",
    "resolve",
    "select_rule",
]
