"""Administrative areas: names and codes, seeding the sample, the COD-AB import, menus, labels.

Mali's areas form a tree: region (or the Bamako district) > cercle > commune > quartier (the
district has no cercles: its communes hang directly under it). Reports, contacts, stakeholders
and routing rules point at areas, so every area needs an identifier that survives re-imports and
can be written by hand in configuration files. That identifier is ``Area.code``:

- regions and the district use their ISO 3166-2 code (``ML-1`` Kayes ... ``ML-BKO`` Bamako, from
  pycountry), because it is the one public, stable code for them;
- below, ``<parent code>.<slug>`` (``ML-2.kati``, ``ML-BKO.commune-iv``,
  ``ML-BKO.commune-i.banconi``), a readable code derived from the names when the area is created;
- a top-level area the ISO list does not know (a region of the 2023 reform brought by an import)
  gets ``ML.<slug>``.

A code is derived once, when the area is created, and never rewritten: after a rename or a move
it no longer spells the path, and that is the point (configuration and reports keep working).
The official OCHA P-code, when known, is kept beside it in ``Area.pcode``.

Names are compared with :func:`match_key` (accents, case, spaces and punctuation ignored, a few
known spelling variants mapped), because the shipped sample and the official table disagree on
accents (Segou/Ségou, Diema/Diéma) and the sample is not even consistent with itself.

Database functions here flush but never commit: the caller owns the transaction
(:func:`citoyen.db.session_scope` commits on success, rolls back on error), which is what makes an
import all-or-nothing.

Modules: :mod:`.names` (comparing and sorting names, ISO regions), :mod:`.rows` (the rows already
stored and how new ones are written), :mod:`.seeding` (the shipped sample), :mod:`.cod_ab` (the
official table), :mod:`.menus` (the cached map the engine reads), :mod:`.trees` (the tree routing
reads), :mod:`.labels` (lookups and display names).
"""
