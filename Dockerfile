# Field Console production image: one image for web (gunicorn), worker and beat (Celery).
# docker-compose.yml shows the layout; configuration comes from the environment
# (.env.example lists every name).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# gettext: msgfmt for compilemessages. The PostgreSQL driver is psycopg[binary], which
# brings its own libpq, so no build tools are needed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gettext \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .

# Build-time steps must not create var/secret_key (the embedded default's generated key)
# inside the image, so they get a throwaway SECRET_KEY; containers get the real one at run
# time. DEBUG is false here, so collectstatic writes WhiteNoise's compressed, hashed files.
RUN set -eux; \
    export SECRET_KEY=build-time-only; \
    if find locale -name '*.po' 2>/dev/null | grep -q .; then \
        python manage.py compilemessages -v 0; \
    fi; \
    python manage.py collectstatic --noinput -v 0; \
    useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app; \
    mkdir -p var/mail; \
    chown -R app:app var

USER app

# gunicorn serves plain HTTP on port 8000 for a TLS proxy in front (docker-compose.yml's
# `proxy`); HTTPS is the proxy's. By default the image believes no X-Forwarded-* header:
# BEHIND_PROXY is unset (Django ignores X-Forwarded-Proto and X-Forwarded-For) and
# FORWARDED_ALLOW_IPS is empty (gunicorn trusts no address to say the scheme), so a client
# reaching port 8000 directly cannot claim HTTPS or another address. Behind your own proxy,
# set BEHIND_PROXY=true and FORWARDED_ALLOW_IPS to the proxy's address (or `*` when nothing
# but the proxy can reach port 8000, as in the compose file).
ENV FORWARDED_ALLOW_IPS=""

EXPOSE 8000

CMD ["gunicorn", "console.wsgi:application", \
     "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "60", \
     "--access-logfile", "-"]
