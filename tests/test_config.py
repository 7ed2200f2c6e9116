import pytest

from backend import create_app
from backend.config import ConfigError


def test_missing_secret_fails_fast_outside_tests(monkeypatch, tmp_path):
    monkeypatch.delenv("CARNET_SECRET_KEY", raising=False)
    monkeypatch.delenv("CARNET_SECRET_KEY_FILE", raising=False)
    monkeypatch.setenv("CARNET_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="CARNET_SECRET_KEY"):
        create_app({"TASK_QUEUE": "immediate"})


MASTER = "A" * 43 + "="


def test_missing_master_key_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("CARNET_SECRET_KEY", "s" * 32)
    monkeypatch.delenv("CARNET_MASTER_KEY", raising=False)
    monkeypatch.delenv("CARNET_MASTER_KEY_FILE", raising=False)
    with pytest.raises(ConfigError, match="CARNET_MASTER_KEY"):
        create_app({"TASK_QUEUE": "immediate"})


def test_short_secret_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("CARNET_MASTER_KEY", MASTER)
    monkeypatch.setenv("CARNET_SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="too short"):
        create_app({"TASK_QUEUE": "immediate"})


def test_configuration_comes_from_prefixed_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CARNET_MASTER_KEY", MASTER)
    monkeypatch.setenv("CARNET_SECRET_KEY", "s" * 32)
    monkeypatch.setenv("CARNET_RETENTION_YEARS", "7")
    monkeypatch.setenv("CARNET_TASK_QUEUE", "immediate")
    monkeypatch.setenv("CARNET_INSTANCE_PATH", str(tmp_path))
    app = create_app()
    assert app.config["RETENTION_YEARS"] == 7
    # SQLite in the instance folder by default
    assert app.config["SQLALCHEMY_URL"] == f"sqlite:///{tmp_path / 'carnet.db'}"


def test_secret_from_file(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("f" * 40 + "\n")
    key = tmp_path / "master"
    key.write_text(MASTER + "\n")
    monkeypatch.setenv("CARNET_MASTER_KEY_FILE", str(key))
    monkeypatch.delenv("CARNET_MASTER_KEY", raising=False)
    monkeypatch.delenv("CARNET_SECRET_KEY", raising=False)
    monkeypatch.setenv("CARNET_SECRET_KEY_FILE", str(secret))
    monkeypatch.setenv("CARNET_INSTANCE_PATH", str(tmp_path))
    app = create_app({"TASK_QUEUE": "immediate"})
    assert app.config["SECRET_KEY"] == "f" * 40


def test_postgres_url_gets_the_psycopg_driver(monkeypatch, tmp_path):
    monkeypatch.setenv("CARNET_MASTER_KEY", MASTER)
    monkeypatch.setenv("CARNET_SECRET_KEY", "s" * 32)
    monkeypatch.setenv("CARNET_DATABASE_URL", "postgresql://user@db.internal/carnet")
    app = create_app({"TASK_QUEUE": "immediate"})
    assert app.config["SQLALCHEMY_URL"] == "postgresql+psycopg://user@db.internal/carnet"
