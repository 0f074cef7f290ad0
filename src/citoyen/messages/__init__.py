"""Neutral messages, below both services and channels.

:mod:`.types` holds the inbound event and the reply every channel and the conversation service
exchange; :mod:`.render` turns the engine's prompts into SMS text, Telegram buttons and voice
turns. Pure: no database, no provider, no web framework (checked by ``lint-imports``).
"""
