"""The similarity stage's settings dataclasses and config/schemas/similarity.yaml agree on every default."""

from schema_defaults import assert_defaults_match

from eolabels.similarity.audit import AuditSettings
from eolabels.similarity.selfdenoise import DenoiseSettings
from eolabels.similarity.toy import ToyStudy


def test_audit_settings_defaults_are_the_schemas():
    # the seed is the run's seed; the workflow withholds a season (acceptance A2) where the API
    # audits every tile unless told otherwise
    assert_defaults_match(AuditSettings, "schemas/similarity.yaml", "audit", skip=("seed", "withheld_season"))


def test_pretrained_audit_settings_defaults_are_the_schemas():
    # the pretrained audit withholds no season: pretraining saw every season
    assert_defaults_match(AuditSettings, "schemas/similarity.yaml", "audit_pretrained", skip=("seed", "withheld_season"))


def test_denoise_settings_defaults_are_the_schemas():
    assert_defaults_match(DenoiseSettings, "schemas/similarity.yaml", "denoise")


def test_toy_study_defaults_are_the_schemas():
    assert_defaults_match(ToyStudy, "schemas/similarity.yaml", "toy")
