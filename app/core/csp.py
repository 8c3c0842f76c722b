"""Content-Security-Policy: what a Chorus page may load, run, embed and post to.

Pages have no inline script, style or event handler (styles are in /static/chorus.css), so the
policy allows only Chorus's own origin, plus the CAPTCHA provider's script and frame when one is
configured, and Stripe Checkout as a form target: the donate form posts to Chorus, which
redirects the browser to Stripe, and browsers apply `form-action` to that redirect too.
/docs and /redoc have policies of their own (app/core/docs.py).
"""

from __future__ import annotations

from app.core.config import Settings

# Where Stripe Checkout sessions live (`checkout.url` of every session Stripe creates).
STRIPE_CHECKOUT_ORIGIN = "https://checkout.stripe.com"
# What each CAPTCHA provider's widget loads, from their documentation.
CAPTCHA_ORIGINS = {
    "turnstile": "https://challenges.cloudflare.com",
    "hcaptcha": "https://hcaptcha.com https://*.hcaptcha.com",
}


def policy(directives: dict[str, str]) -> str:
    return "; ".join(f"{name} {value}".strip() for name, value in directives.items())


def page_policy(settings: Settings, *, frame_ancestors: list[str] | None = None) -> str:
    """The policy of every Chorus response that does not set its own. `frame_ancestors`: the
    origins that may show the page in a frame (the embeddable sign form); none by default."""
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "connect-src": "'self'",
        "frame-src": "'none'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": f"'self' {STRIPE_CHECKOUT_ORIGIN}",
        "frame-ancestors": " ".join(frame_ancestors or []) or "'none'",
    }
    if settings.CAPTCHA_PROVIDER:
        origins = CAPTCHA_ORIGINS[settings.CAPTCHA_PROVIDER]
        for name in ("script-src", "connect-src"):
            directives[name] += f" {origins}"
        directives["frame-src"] = origins
        if settings.CAPTCHA_PROVIDER == "hcaptcha":
            directives["style-src"] += f" {origins}"
    return policy(directives)
