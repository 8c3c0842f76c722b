"""The organiser console: server-rendered pages under /admin over the same services as the API.

Forms are plain HTML (POST, then a redirect to a GET); every one carries a CSRF token. Pages
carry no inline script or style (the site's Content-Security-Policy allows only its own files):
the stylesheet is `app/console/static/console.css`, served at /admin/static.
"""
