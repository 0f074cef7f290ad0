"""What may be published, and the published figures: the one gate for every public number.

``suppression`` decides which cells of a table of counts stay hidden (primary and secondary
suppression); ``figures`` builds the public figures (reports, response times, perceived safety)
from the database through it. The CLI, the admin dashboard, the public pages and the open data
all take their numbers from here (docs/transparency.md).
"""
