"""Signed QR payloads: round trip, tampering, keys, rotation and retirement. No database."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from app.certificates import signing
from app.certificates.rules import CertificateKind
from app.certificates.signing import CardFields, Outcome, PublishedKey

D = dt.date
BASE = "https://zfz.sft.gd.gov.cn"
TODAY = D(2027, 6, 1)

FIELDS = CardFields(
    number="4401002026000123",
    name="张三",
    agency="广州市市场监督管理局",
    valid_from=D(2026, 3, 1),
    valid_until=D(2031, 2, 28),
    kind=CertificateKind.ENFORCEMENT,
)


@pytest.fixture(scope="module")
def old_key():
    return signing.generate_key()


@pytest.fixture(scope="module")
def new_key():
    return signing.generate_key()


def jwks(*keys, retired=()):
    published = [PublishedKey.from_jwk(k[2]) for k in keys]
    published += [PublishedKey.from_jwk(k[2], retired_on=D(2027, 1, 1)) for k in retired]
    return signing.jwks_document(published)


def sign(key, fields=FIELDS, base=BASE):
    kid, pem, _ = key
    return signing.sign_payload(fields, pem, kid, base)


def test_generate_key_gives_rfc8037_jwk_and_short_kid(old_key) -> None:
    kid, pem, jwk = old_key
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert set(jwk) == {"kty", "crv", "x", "kid", "use", "alg"}
    assert (jwk["kty"], jwk["crv"], jwk["use"], jwk["alg"]) == ("OKP", "Ed25519", "sig", "EdDSA")
    assert len(signing.b64url_decode(jwk["x"])) == 32
    assert jwk["kid"] == kid == signing.kid_of(jwk["x"]) and len(kid) == 8


def test_kid_is_the_rfc7638_thumbprint_prefix() -> None:
    # RFC 8037 appendix A.3: thumbprint of the example Ed25519 key.
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    assert signing.kid_of(x) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"[:8]


@pytest.mark.parametrize(
    "fields",
    [
        FIELDS,
        CardFields(
            "S110000-2027-00007",
            "欧阳娜娜",
            "北京市司法局",
            D(2027, 1, 1),
            D(2031, 12, 31),
            CertificateKind.SUPERVISION,
        ),
        CardFields(
            "GD00000042", "李" * 40, "某" * 80, D(2024, 2, 29), D(2029, 2, 28), CertificateKind.ENFORCEMENT
        ),
    ],
)
def test_round_trip(old_key, fields) -> None:
    text = sign(old_key, fields)
    assert text.startswith(f"{BASE}/v/{fields.number}#")
    assert text.isascii()
    result = signing.verify_payload(text, jwks(old_key), now=D(2028, 1, 1))
    assert result.ok and result.outcome is Outcome.GENUINE, result.reason_zh
    assert result.fields == fields
    assert result.kid == old_key[0] and result.base_url == BASE
    assert "二维码真实" in result.reason_zh and "网上查询" in result.reason_zh


def test_typical_payload_is_compact(old_key) -> None:
    assert len(sign(old_key)) < 240


def test_flipping_any_character_is_never_genuine(old_key) -> None:
    text, keys = sign(old_key), jwks(old_key)
    for i, c in enumerate(text):
        for repl in {"A", "b", "0", "-", "_", "."} - {c}:
            forged = text[:i] + repl + text[i + 1 :]
            result = signing.verify_payload(forged, keys, now=TODAY)
            assert not result.ok, (i, repl, forged)
            assert result.fields is None or result.outcome is not Outcome.GENUINE
            assert result.outcome in {Outcome.MALFORMED, Outcome.BAD_SIGNATURE, Outcome.UNKNOWN_KEY}


@pytest.mark.parametrize("extra", [" ", "\n", "=", "A", "#", "?x=1"])
def test_appended_characters_are_refused(old_key, extra) -> None:
    assert not signing.verify_payload(sign(old_key) + extra, jwks(old_key), now=TODAY).ok


def test_non_canonical_base64_of_the_signature_is_refused(old_key) -> None:
    text = sign(old_key)
    last = text[-1]
    # The last character carries 2 spare bits: a lenient decoder would read the same signature.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    same = [c for c in alphabet if c != last and alphabet.index(c) >> 4 == alphabet.index(last) >> 4]
    for c in same:
        result = signing.verify_payload(text[:-1] + c, jwks(old_key), now=TODAY)
        assert result.outcome is Outcome.MALFORMED


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        f"{BASE}/v/123",
        f"{BASE}/v/123#abc",
        "ftp://x/v/1#YQ." + "A" * 86,
        f"{BASE}/v/1#YQ." + "A" * 85,
    ],
)
def test_malformed(text) -> None:
    result = signing.verify_payload(text, {"keys": []}, now=TODAY)
    assert result.outcome is Outcome.MALFORMED and "格式不正确" in result.reason_zh


def test_unsupported_version_is_malformed(old_key) -> None:
    body = signing.b64url("2|abcdefgh|E|20260101|20301231|张三|某局".encode())
    text = f"{BASE}/v/1#{body}." + "A" * 86
    result = signing.verify_payload(text, jwks(old_key), now=TODAY)
    assert result.outcome is Outcome.MALFORMED and "版本" in result.reason_zh


def test_wrong_kid_is_unknown(old_key, new_key) -> None:
    result = signing.verify_payload(sign(old_key), jwks(new_key), now=TODAY)
    assert result.outcome is Outcome.UNKNOWN_KEY and old_key[0] in result.reason_zh
    assert result.fields is None


def test_forged_payload_signed_by_another_key_under_a_published_kid(old_key, new_key) -> None:
    # The forger signs with their own key but writes the authority's kid into the body.
    _, forger_pem, _ = new_key
    forger = signing.load_private_key(forger_pem)
    body = signing.b64url(signing._body_text(FIELDS, old_key[0]).encode())
    signed = f"{BASE}/v/{FIELDS.number}#{body}"
    forged = f"{signed}.{signing.b64url(forger.sign(signing.CONTEXT + signed.encode()))}"
    result = signing.verify_payload(forged, jwks(old_key), now=TODAY)
    assert result.outcome is Outcome.BAD_SIGNATURE and "篡改或系伪造" in result.reason_zh
    assert result.fields is None


def test_payload_moved_to_another_number_or_host_is_refused(old_key) -> None:
    text, keys = sign(old_key), jwks(old_key)
    other_number = text.replace("/v/4401002026000123#", "/v/4401002026000124#")
    other_host = text.replace(BASE, "https://zfz-check.example.com")
    for forged in (other_number, other_host):
        assert signing.verify_payload(forged, keys, now=TODAY).outcome is Outcome.BAD_SIGNATURE


def test_rotation_both_keys_verify_until_the_old_is_retired(old_key, new_key) -> None:
    old_card, new_card = sign(old_key), sign(new_key)
    both = jwks(new_key, old_key)
    assert signing.verify_payload(old_card, both, now=TODAY).ok
    assert signing.verify_payload(new_card, both, now=TODAY).ok

    after = jwks(new_key, retired=[old_key])
    assert [k["kid"] for k in after["keys"]] == [new_key[0]]  # a JOSE library never sees the old key
    assert after["retired"] == [{"kid": old_key[0], "retired_on": "2027-01-01"}]
    result = signing.verify_payload(old_card, after, now=TODAY)
    assert result.outcome is Outcome.RETIRED_KEY and not result.ok
    assert "已于 2027-01-01 停用" in result.reason_zh and result.fields is None
    assert signing.verify_payload(new_card, after, now=TODAY).ok


def test_retired_marker_inside_keys_is_honoured(old_key) -> None:
    doc = jwks(old_key)
    doc["keys"][0]["retired"] = True
    result = signing.verify_payload(sign(old_key), doc, now=TODAY)
    assert result.outcome is Outcome.RETIRED_KEY


def test_jwks_document_is_json_and_rfc8037(old_key, new_key) -> None:
    doc = json.loads(json.dumps(jwks(old_key, new_key)))
    assert "retired" not in doc
    for entry, key in zip(doc["keys"], (old_key, new_key), strict=True):
        assert entry == key[2]


@pytest.mark.parametrize(
    "now,outcome,ok",
    [
        (D(2026, 2, 28), Outcome.NOT_YET_VALID, False),
        (D(2026, 3, 1), Outcome.GENUINE, True),
        (D(2031, 2, 28), Outcome.GENUINE, True),
        (D(2031, 3, 1), Outcome.EXPIRED, False),
        (dt.datetime(2031, 2, 28, 17, 0, tzinfo=dt.UTC), Outcome.EXPIRED, False),  # 01:00 on 1 March in China
        (dt.datetime(2031, 2, 28, 15, 0, tzinfo=dt.UTC), Outcome.GENUINE, True),
    ],
)
def test_validity_dates(old_key, now, outcome, ok) -> None:
    result = signing.verify_payload(sign(old_key), jwks(old_key), now=now)
    assert (result.outcome, result.ok) == (outcome, ok)
    if outcome is Outcome.EXPIRED:
        assert "2031年02月28日 到期" in result.reason_zh
        assert result.fields == FIELDS  # genuine, only expired


@pytest.mark.parametrize(
    "change,message",
    [
        ({"name": "张|三"}, "姓名含有不允许的字符"),
        ({"name": ""}, "姓名不能为空"),
        ({"agency": " 某局"}, "单位不能为空"),
        ({"agency": "某" * 81}, "单位超过 80 个字"),
        ({"number": "44/01"}, "证号"),
        ({"valid_until": D(2020, 1, 1)}, "早于"),
    ],
)
def test_sign_refuses_bad_fields(old_key, change, message) -> None:
    import dataclasses

    with pytest.raises(ValueError, match=message):
        sign(old_key, dataclasses.replace(FIELDS, **change))


def test_sign_refuses_a_kid_that_is_not_the_key(old_key, new_key) -> None:
    with pytest.raises(ValueError, match="密钥编号"):
        signing.sign_payload(FIELDS, old_key[1], new_key[0], BASE)


def test_sign_accepts_a_base_url_with_a_path_and_trailing_slash(old_key) -> None:
    text = sign(old_key, base=BASE + "/zfz/")
    assert text.startswith(BASE + "/zfz/v/")
    result = signing.verify_payload(text, jwks(old_key), now=TODAY)
    assert result.ok and result.base_url == BASE + "/zfz"


def test_token_is_stable_and_distinguishes_cards(old_key) -> None:
    import dataclasses

    text = sign(old_key)
    fragment = text.split("#", 1)[1]
    assert signing.token_of(text) == signing.token_of(fragment) == signing.token_of("#" + fragment)
    assert signing.token_of(text) == signing.token_of(sign(old_key))  # Ed25519 is deterministic
    renewed = sign(old_key, dataclasses.replace(FIELDS, valid_until=D(2036, 2, 28)))
    assert signing.token_of(renewed) != signing.token_of(text)
    assert len(signing.token_of(text)) == 43
