# Chorus: one image for the web server (default command) and the mail worker (`chorus worker`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ENVIRONMENT=production

# Fonts for printable (postal) letters: Latin and Cyrillic (DejaVu), Hangul (Noto CJK); see
# PDF_FONTS in the README.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin chorus
WORKDIR /srv/chorus

# Dependencies in their own layer, rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir app && touch app/__init__.py \
 && pip install . \
 && pip uninstall -y chorus \
 && rm -rf app build

# Then the application itself (editable, so templates/ and migrations/ are found beside it).
COPY alembic.ini ./
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
COPY app ./app
RUN pip install --no-deps -e . && chown -R root:root /srv/chorus

USER chorus
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)" || exit 1

# Migrations run before the server starts (a PostgreSQL advisory lock keeps concurrent
# replicas from migrating at the same time). Run the worker with: docker run IMAGE chorus worker
CMD ["sh", "-c", "chorus migrate && exec chorus serve --host 0.0.0.0 --port 8000 --workers ${WEB_CONCURRENCY:-2}"]
