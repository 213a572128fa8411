# Field Console — developer and CI entry points.
#
#   make run    virtualenv + dependencies + migrations + demo data, then the console at
#               http://127.0.0.1:8000 with a Celery worker and beat in the background
#   make test   the whole test suite (SQLite unless DATABASE_URL is set; ARGS="-k foo" passes through)
#
# Everything runs from .venv, made here on first use. Re-runs skip the install until a
# requirements file changes (the stamp below is older than it).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements-installed
ARGS   ?=
HOST   ?= 127.0.0.1
PORT   ?= 8000

# The filesystem broker (REDIS_URL unset) needs its folders to exist before the worker
# starts; var/mail is where the embedded default writes emails.
RUNTIME_DIRS := var/celery/queue var/celery/processed var/celery/control var/mail

.PHONY: help install run test lint fmt bench messages compilemessages migrate clean distclean

help:
	@echo "make run        set up and serve the console at http://$(HOST):$(PORT) with background jobs"
	@echo "make test       run the test suite (ARGS=\"-k foo\" to pass pytest arguments)"
	@echo "make lint       ruff check + ruff format --check"
	@echo "make fmt        ruff check --fix + ruff format"
	@echo "make bench      run every bench/*.py script"
	@echo "make messages   extract and compile translations (zh_Hans, en)"
	@echo "make migrate    apply database migrations"
	@echo "make clean      remove caches, collected static files and the local broker queue"
	@echo "make distclean  clean, and also remove .venv, var/ and db.sqlite3 (back to a fresh clone)"

$(PY):
	$(PYTHON) -m venv $(VENV)

# requirements-dev.txt includes requirements.txt, so one install serves run, test and lint.
$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $@

install: $(STAMP)

$(RUNTIME_DIRS):
	@mkdir -p $@

# Compiles locale/*.po when there are any. Django's own .po files under .venv are not ours
# to compile. Without gettext's msgfmt the console still runs, in its source language.
compilemessages: $(STAMP)
	@if find locale -name '*.po' 2>/dev/null | grep -q .; then \
		if command -v msgfmt >/dev/null; then \
			$(PY) manage.py compilemessages --ignore='.venv' --ignore='var' -v 0; \
		else \
			echo "warning: msgfmt (gettext) not found; translations not compiled" >&2; \
		fi; \
	fi

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

# runserver with DEBUG serves static files from the apps directly, so no collectstatic
# here. The worker runs beat embedded (-B) with the database scheduler from settings, and
# is stopped by the trap whenever the dev server exits (Ctrl-C, a crash, a busy port).
run: export DEBUG ?= true
run: $(STAMP) compilemessages | $(RUNTIME_DIRS)
	$(PY) manage.py migrate --noinput
	@if $(PY) manage.py help seeddemo >/dev/null 2>&1; then \
		$(PY) manage.py seeddemo; \
	else \
		echo "(seeddemo is not available yet: no demo data loaded)"; \
	fi
	@echo
	@echo "Field Console:  http://$(HOST):$(PORT)/   admin: /admin/   API docs: /api/docs/"
	@echo "现场控制台:     http://$(HOST):$(PORT)/   管理后台: /admin/   API 文档: /api/docs/"
	@echo "Emails are written as files under var/mail/ (embedded default, no mail server)."
	@echo "Background jobs: a Celery worker with beat runs alongside; its log is mixed in below."
	@echo "Stop with Ctrl-C."
	@echo
	@$(VENV)/bin/celery -A console worker -B --concurrency=2 --loglevel=INFO & worker=$$!; \
	server=; \
	trap 'kill -TERM $$worker $$server 2>/dev/null; wait $$worker $$server 2>/dev/null' EXIT; \
	trap 'exit 130' INT; \
	trap 'exit 143' TERM HUP; \
	$(PY) manage.py runserver $(HOST):$(PORT) & server=$$!; \
	wait $$server

test: $(STAMP) compilemessages
	$(VENV)/bin/pytest $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Runs every benchmark script (a bench/*.py that runs as a program; helpers are skipped), keeps going after a failure, and fails at the end if
# any failed. Results are recorded by hand in bench/RESULTS.md.
bench: $(STAMP) | $(RUNTIME_DIRS)
	@failed=""; ran=0; \
	for script in bench/*.py; do \
		[ -e "$$script" ] || continue; \
		grep -q '^if __name__ == "__main__"' "$$script" || continue; \
		ran=$$((ran + 1)); \
		echo "== $$script"; \
		$(PY) "$$script" || failed="$$failed $$script"; \
	done; \
	if [ "$$ran" -eq 0 ]; then echo "no benchmarks in bench/"; fi; \
	if [ -n "$$failed" ]; then echo "FAILED:$$failed" >&2; exit 1; fi

messages: $(STAMP)
	@mkdir -p locale
	$(PY) manage.py makemessages -l zh_Hans -l en --ignore='.venv/*' --ignore='var/*' --ignore='bench/*'
	$(PY) manage.py compilemessages --ignore='.venv' --ignore='var'

clean:
	rm -rf .pytest_cache .ruff_cache var/static var/celery
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) var db.sqlite3
