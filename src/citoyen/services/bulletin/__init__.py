"""The monthly bulletin of an area for its communal security council (CCS): contents from the
publication module and the case files (``contents``), typeset as PDF with WeasyPrint
(``render``), made by the worker each month and on demand by ``citoyen bulletin make``
(docs/transparency.md)."""
