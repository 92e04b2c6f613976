"""Config and secret handling: every mistake is an error that names the key or variable."""

from __future__ import annotations

import base64

import pytest
import yaml

from contract.errors import ConfigError, SecretError
from mobility.config import load_config
from mobility.secrets import derive_daily_key, read_secret
from tests.conftest import ROOT


def _conf(tmp_path, mutate) -> str:
    data = yaml.safe_load((ROOT / "conf" / "local.yaml").read_text())
    mutate(data)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("env", ["local", "cluster"])
def test_shipped_configs_load(env):
    cfg = load_config(ROOT / "conf" / f"{env}.yaml")
    assert cfg.privacy.k_min == 15
    assert cfg.generalization.age_band_edges == (18, 25, 35, 45, 55, 65)
    assert cfg.secrets.network_key_env == "MI_NETWORK_KEY"


def test_cluster_config_has_no_local_paths():
    cfg = load_config(ROOT / "conf" / "cluster.yaml")
    for zone in (cfg.lake.raw, cfg.lake.curated, cfg.lake.insights, cfg.lake.reports):
        assert "://" in zone, zone


def test_unknown_key_is_named(tmp_path):
    path = _conf(tmp_path, lambda d: d["privacy"].update(k_minimum=3))
    with pytest.raises(ConfigError, match=r"unknown config key 'privacy\.k_minimum'"):
        load_config(path)


def test_unknown_section_is_named(tmp_path):
    path = _conf(tmp_path, lambda d: d.update(extras={"a": 1}))
    with pytest.raises(ConfigError, match="unknown config section 'extras'"):
        load_config(path)


def test_missing_key_is_named(tmp_path):
    path = _conf(tmp_path, lambda d: d["generalization"].pop("window_minutes"))
    with pytest.raises(ConfigError, match=r"missing config key 'generalization\.window_minutes'"):
        load_config(path)


def test_wrong_type_is_named(tmp_path):
    path = _conf(tmp_path, lambda d: d["privacy"].update(k_min="fifteen"))
    with pytest.raises(ConfigError, match=r"'privacy\.k_min' must be an integer"):
        load_config(path)


def test_window_must_divide_a_day(tmp_path):
    path = _conf(tmp_path, lambda d: d["generalization"].update(window_minutes=7))
    with pytest.raises(ConfigError, match="window_minutes"):
        load_config(path)


def test_min_age_below_first_band_is_rejected(tmp_path):
    path = _conf(tmp_path, lambda d: d["privacy"].update(min_age=16))
    with pytest.raises(ConfigError, match=r"privacy\.min_age"):
        load_config(path)


def test_overrides_are_typed_and_validated():
    cfg = load_config(ROOT / "conf" / "local.yaml",
                      ["privacy.k_min=20", "generalization.age_band_edges=[18, 30, 60]",
                       "spark.conf.spark.sql.shuffle.partitions=3", "lake.raw=/data/raw"])
    assert cfg.privacy.k_min == 20
    assert cfg.generalization.age_band_edges == (18, 30, 60)
    assert cfg.spark.conf["spark.sql.shuffle.partitions"] == "3"
    assert cfg.lake.raw == "/data/raw"
    with pytest.raises(ConfigError, match=r"unknown config key 'privacy\.kmin'"):
        load_config(ROOT / "conf" / "local.yaml", ["privacy.kmin=3"])
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        load_config(ROOT / "conf" / "local.yaml", ["k_min"])


def test_missing_config_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("conf/nope.yaml")


def test_no_config_file_holds_a_secret():
    for path in (ROOT / "conf").glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        assert set(data["secrets"]) == {"network_key_env", "daily_key_env"}, path


def test_missing_secret_names_the_variable():
    with pytest.raises(SecretError, match="MI_NETWORK_KEY") as err:
        read_secret("MI_NETWORK_KEY", environ={})
    assert "MI_NETWORK_KEY_FILE" in str(err.value)


def test_secret_from_hex_base64_and_file(tmp_path):
    raw = bytes(range(32))
    assert read_secret("K", environ={"K": raw.hex()}).value == raw
    assert read_secret("K", environ={"K": base64.b64encode(raw).decode()}).value == raw
    f = tmp_path / "key"
    f.write_text(raw.hex() + "\n")
    assert read_secret("K", environ={"K_FILE": str(f)}).value == raw


def test_bad_secrets_are_errors_without_echoing_the_value():
    with pytest.raises(SecretError, match="shorter than 16 bytes") as err:
        read_secret("K", environ={"K": "00ff"})
    assert "00ff" not in str(err.value)
    with pytest.raises(SecretError, match="neither hex nor base64"):
        read_secret("K", environ={"K": "not a key!"})
    with pytest.raises(SecretError, match="does not exist"):
        read_secret("K", environ={"K_FILE": "/nonexistent/key"})


def test_secret_never_prints_itself():
    s = read_secret("K", environ={"K": "ab" * 32})
    assert "ab" * 8 not in repr(s) and "ab" * 8 not in str(s)


def test_daily_keys_differ_per_day_and_are_stable():
    master = read_secret("K", environ={"K": "11" * 32})
    a1, a2 = derive_daily_key(master, "2026-10-05"), derive_daily_key(master, "2026-10-05")
    b = derive_daily_key(master, "2026-10-06")
    assert a1.value == a2.value != b.value


@pytest.mark.parametrize(("key", "value", "ok"), [
    ("privacy.k_min", 9, False), ("privacy.k_min", 10, True),
    ("generalization.h3_resolution", 10, False), ("generalization.h3_resolution", 9, True),
    ("generalization.od_h3_resolution", 10, False), ("generalization.od_h3_resolution", 9, True),
    ("generalization.window_minutes", 10, False), ("generalization.window_minutes", 15, True),
])
def test_policy_floors(key, value, ok):
    """k_min >= 10, H3 resolution <= 9, windows >= 15 minutes: looser is a config error naming the key."""
    overrides = [f"{key}={value}"]
    if ok:
        cfg = load_config(ROOT / "conf" / "local.yaml", overrides)
        section, name = key.split(".")
        assert getattr(getattr(cfg, section), name) == value
    else:
        with pytest.raises(ConfigError, match=rf"'{key}' must .*policy floor.*got {value}"):
            load_config(ROOT / "conf" / "local.yaml", overrides)


def test_policy_floor_on_the_command_line_exits_2(capsys):
    from jobs import aggregate

    assert aggregate.main(["--conf", str(ROOT / "conf" / "local.yaml"), "--date", "2026-10-05",
                           "--set", "privacy.k_min=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: config key 'privacy.k_min' must be at least 10")
