"""Reach: share links and tags for link previews, the share image, the count badge.

Everything here is public and the same for everyone, so it is served as cached public reads
(app/core/http.py). The embeddable sign form is a petition page (app/petitions/embed.py).
"""
