"""citoyen: citizens of Mali raise security concerns; stakeholders act; perceived safety is measured."""

__version__ = "0.1.0"
