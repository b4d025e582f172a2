"""Kafka connection security from the settings: each protocol gives aiokafka and faust the right
options, and a setting that cannot be used stops the client's creation with a message naming it.

The dev broker (Tansu) speaks plaintext only, so Kafka TLS and SASL are tested here, at the level
of the options every client is made with, not against a broker.
"""

from __future__ import annotations

import ssl

import faust
import pytest
import trustme
from aiokafka.admin import AIOKafkaAdminClient

from libs.config.settings import PodiumSettings
from libs.events.kafka import make_producer, make_reader
from libs.events.kafka_security import KafkaSecurityError, kafka_security
from libs.streams.faust_app import faust_credentials, make_faust_app


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA file, and a client certificate and key signed by it."""
    where = tmp_path_factory.mktemp("kafka-pki")
    ca = trustme.CA()
    client = ca.issue_cert("podium-room")
    ca.cert_pem.write_to_path(str(where / "ca.pem"))
    client.cert_chain_pems[0].write_to_path(str(where / "client.pem"))
    client.private_key_pem.write_to_path(str(where / "client.key"))
    return {name: str(where / name) for name in ("ca.pem", "client.pem", "client.key")}


def settings(**fields) -> PodiumSettings:
    return PodiumSettings(**fields)


def test_plaintext_is_the_default_and_adds_nothing_else():
    assert kafka_security(settings()) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings()) is None


def test_ssl_verifies_brokers_against_the_ca_file(pki):
    options = kafka_security(settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=pki["ca.pem"]))
    assert set(options) == {"security_protocol", "ssl_context"}
    assert options["security_protocol"] == "SSL"
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any("trustme" in str(c.get("issuer")) for c in context.get_ca_certs())


def test_ssl_presents_a_client_certificate_when_given_one(pki):
    options = kafka_security(
        settings(
            kafka_security_protocol="SSL",
            kafka_ssl_ca_file=pki["ca.pem"],
            kafka_ssl_cert_file=pki["client.pem"],
            kafka_ssl_key_file=pki["client.key"],
        )
    )
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_ssl_without_a_ca_file_trusts_the_system_roots():
    options = kafka_security(settings(kafka_security_protocol="SSL"))
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_sasl_plaintext_logs_in_with_scram_sha_512_by_default():
    options = kafka_security(
        settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_username="podium-room",
            kafka_sasl_password="s3cret",
        )
    )
    assert options == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "podium-room",
        "sasl_plain_password": "s3cret",
    }


def test_sasl_ssl_has_both_the_login_and_the_tls_context(pki):
    options = kafka_security(
        settings(
            kafka_security_protocol="SASL_SSL",
            kafka_ssl_ca_file=pki["ca.pem"],
            kafka_sasl_mechanism="SCRAM-SHA-256",
            kafka_sasl_username="podium-room",
            kafka_sasl_password="s3cret",
        )
    )
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_a_missing_ca_file_names_the_setting(tmp_path):
    missing = str(tmp_path / "nowhere.pem")
    with pytest.raises(KafkaSecurityError, match=r"PODIUM_KAFKA_SSL_CA_FILE: cannot read .*nowhere\.pem"):
        kafka_security(settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=missing))


def test_a_file_that_is_not_pem_names_the_settings(tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(KafkaSecurityError, match="PODIUM_KAFKA_SSL_CA_FILE"):
        kafka_security(settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=str(junk)))


def test_a_client_certificate_without_its_key_is_refused(pki):
    with pytest.raises(KafkaSecurityError, match="PODIUM_KAFKA_SSL_KEY_FILE is not set"):
        kafka_security(settings(kafka_security_protocol="SSL", kafka_ssl_cert_file=pki["client.pem"]))


def test_sasl_without_a_password_names_the_setting():
    with pytest.raises(KafkaSecurityError, match="PODIUM_KAFKA_SASL_PASSWORD is not set"):
        kafka_security(settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="podium-room"))


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("kafka_ssl_ca_file", "/etc/ca.pem", "PODIUM_KAFKA_SSL_CA_FILE"),
        ("kafka_sasl_username", "podium-room", "PODIUM_KAFKA_SASL_USERNAME"),
    ],
)
def test_a_setting_the_protocol_would_ignore_is_refused(field, value, named):
    with pytest.raises(KafkaSecurityError, match=f"{named}.* is PLAINTEXT"):
        kafka_security(settings(**{field: value}))


async def test_every_podium_aiokafka_client_connects_with_the_options(pki):
    secure = settings(
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_ca_file=pki["ca.pem"],
        kafka_sasl_username="podium-room",
        kafka_sasl_password="s3cret",
    )
    producer = make_producer(secure, "test")
    reader = make_reader(secure, "test")
    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9", **kafka_security(secure))
    for client in (producer.client, reader._client, admin._client):
        assert client._security_protocol == "SASL_SSL"
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        assert client._sasl_plain_username == "podium-room"
        assert isinstance(client._ssl_context, ssl.SSLContext)


def test_faust_gets_ssl_credentials(pki):
    credentials = faust_credentials(settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=pki["ca.pem"]))
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol.value == "SSL"
    assert isinstance(credentials.context, ssl.SSLContext)


def test_faust_gets_sasl_credentials_over_tls(pki):
    credentials = faust_credentials(
        settings(
            kafka_security_protocol="SASL_SSL",
            kafka_ssl_ca_file=pki["ca.pem"],
            kafka_sasl_username="podium-presence",
            kafka_sasl_password="s3cret",
        )
    )
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("podium-presence", "s3cret")


def test_faust_gets_sasl_credentials_without_tls():
    credentials = faust_credentials(
        settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_username="podium-presence",
            kafka_sasl_password="s3cret",
        )
    )
    assert credentials.protocol.value == "SASL_PLAINTEXT"
    assert credentials.ssl_context is None


async def test_a_faust_app_connects_with_the_credentials(pki):

    secure = settings(
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_ca_file=pki["ca.pem"],
        kafka_sasl_username="podium-presence",
        kafka_sasl_password="s3cret",
    )
    app = make_faust_app("podium-test-credentials", secure)
    assert isinstance(app.conf.broker_credentials, faust.SASLCredentials)
    assert app.conf.broker_credentials.username == "podium-presence"
