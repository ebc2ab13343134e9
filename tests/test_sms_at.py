"""The AT transport on an in-memory stream: results, typed errors, prompt, URCs inside responses."""

from __future__ import annotations

import asyncio

import pytest

from channels.base import PermanentSendError, RetryableSendError
from channels.sms.at import AtHung, AtPort, AtTimeout, CmeError, CmsError, PortClosed, Urc
from channels.sms.modem import choose_cnmi, choose_storage, classify_cms


class FakeWriter:
    def __init__(self) -> None:
        self.data = b""
        self.written = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.data += data
        self.written.set()

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None


def make_port() -> tuple[AtPort, asyncio.StreamReader, FakeWriter, list[Urc]]:
    reader = asyncio.StreamReader()
    writer = FakeWriter()
    urcs: list[Urc] = []
    port = AtPort(reader, writer, urcs.append)  # type: ignore[arg-type]
    port.start()
    return port, reader, writer, urcs


async def answer(reader: asyncio.StreamReader, writer: FakeWriter, text: str) -> None:
    await writer.written.wait()
    writer.written.clear()
    reader.feed_data(text.encode())


async def test_urc_inside_a_response_is_dispatched_not_returned() -> None:
    port, reader, writer, urcs = make_port()
    task = asyncio.create_task(port.command("AT+CMGL=4", expect="+CMGL"))
    await answer(reader, writer, '\r\n+CMGL: 0,0,,5\r\n+CMTI: "ME",3\r\n0011223344\r\n\r\nOK\r\n')
    assert await task == ["+CMGL: 0,0,,5", "0011223344"]
    assert urcs == [Urc("+CMTI", '"ME",3')]
    await port.close()


async def test_cpin_is_an_answer_when_asked_and_a_urc_otherwise() -> None:
    port, reader, writer, urcs = make_port()
    task = asyncio.create_task(port.command("AT+CPIN?", expect="+CPIN"))
    await answer(reader, writer, "\r\n+CPIN: READY\r\n\r\nOK\r\n")
    assert await task == ["+CPIN: READY"]
    reader.feed_data(b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\nSMS DONE\r\n")
    await asyncio.sleep(0.01)
    assert [u.name for u in urcs] == ["RDY", "+CPIN", "SMS DONE"]
    await port.close()


@pytest.mark.parametrize(
    ("line", "kind", "code"),
    [("+CMS ERROR: 500", CmsError, 500), ("+CMS ERROR: SIM busy", CmsError, 515), ("+CME ERROR: 10", CmeError, 10)],
)
async def test_typed_errors_with_codes(line: str, kind: type, code: int) -> None:
    port, reader, writer, _ = make_port()
    task = asyncio.create_task(port.command("AT+CMGR=1"))
    await answer(reader, writer, f"\r\n{line}\r\n")
    with pytest.raises(kind) as exc:
        await task
    assert exc.value.code == code
    await port.close()


async def test_cmgs_prompt_then_reference_and_two_line_cds() -> None:
    port, reader, writer, urcs = make_port()
    task = asyncio.create_task(port.send_pdu(12, "0011AABB", timeout=2))
    await answer(reader, writer, "\r\n> ")
    await answer(reader, writer, "\r\n+CMGS: 17\r\n\r\nOK\r\n\r\n+CDS: 25\r\n07ABCDEF\r\n")
    assert await task == ["+CMGS: 17"]
    assert writer.data.endswith(b"0011AABB\x1a")
    await asyncio.sleep(0.01)
    assert urcs == [Urc("+CDS", "25", "07ABCDEF")]
    await port.close()


async def test_echo_is_ignored_and_timeout_raises() -> None:
    port, reader, writer, _ = make_port()
    task = asyncio.create_task(port.command("ATE0"))
    await answer(reader, writer, "ATE0\r\r\nOK\r\n")
    assert await task == []
    with pytest.raises(AtTimeout):
        await port.command("AT+CSQ", timeout=0.05)
    await port.close()


async def test_end_of_stream_fails_the_command_in_flight() -> None:
    closed: list[object] = []
    reader = asyncio.StreamReader()
    writer = FakeWriter()
    port = AtPort(reader, writer, lambda _u: None, closed.append)  # type: ignore[arg-type]
    port.start()
    task = asyncio.create_task(port.command("AT"))
    await writer.written.wait()
    reader.feed_eof()
    with pytest.raises(PortClosed):
        await task
    assert closed and port.closed
    with pytest.raises(PortClosed):
        await port.command("AT")


def test_choices_from_test_commands() -> None:
    assert choose_cnmi("+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)") == (2, 1, 0, 1, 0)
    assert choose_cnmi("+CNMI: (0-2),(0-3),(0,2),(0,2),(0,1)")[3] == 2
    assert choose_cnmi("+CNMI: (0,1),(0,1),(0),(0),(0)") == (1, 1, 0, 0, 0)
    assert choose_storage('+CPMS: ("SM","ME","SR"),("SM","ME"),("SM","ME")') == "ME"
    assert choose_storage('+CPMS: ("SM","SR"),("SM"),("SM")') == "SM"


def test_cms_classification() -> None:
    assert isinstance(classify_cms(500), RetryableSendError)
    busy = classify_cms(515)
    assert isinstance(busy, RetryableSendError) and busy.retry_after == 30.0
    bad = classify_cms(1)
    assert isinstance(bad, PermanentSendError) and bad.unreachable
    assert isinstance(classify_cms(304), PermanentSendError) and not classify_cms(304).unreachable  # type: ignore[union-attr]


# -- vendor codes, missing finals and silence (shapes from python-gsmmodem issues and ModemManager) -------


@pytest.mark.parametrize("noise", ["^RSSI: 20", "+ZPASR: \"UMTS\"", "^MODE:5,4", "+CIEV: \"MESSAGE\",1",
                                   "^BOOT:20952350,0,0,0,75", "+QIND: \"csq\",20,99", "+XYZNEW: 1"])
async def test_vendor_codes_inside_a_cmgr_answer_are_unsolicited(noise: str) -> None:
    """python-gsmmodem #40: ['^RSSI: 20', '+CMGR: 0,,20', '0791…', 'OK'] failed to parse there."""
    port, reader, writer, urcs = make_port()
    pdu_line = "07919762020033F1240B919792956102F30000418011026315610133"
    task = asyncio.create_task(port.command("AT+CMGR=0", expect="+CMGR"))
    await answer(reader, writer, f"\r\n{noise}\r\n+CMGR: 0,,20\r\n{pdu_line}\r\n{noise}\r\n\r\nOK\r\n")
    assert await task == ["+CMGR: 0,,20", pdu_line]
    assert [u.name for u in urcs] == [noise.split(":")[0]] * 2
    await port.close()


async def test_a_command_without_a_known_prefix_keeps_its_own_plus_lines() -> None:
    port, reader, writer, urcs = make_port()
    task = asyncio.create_task(port.command("AT+CGMR"))
    await answer(reader, writer, "\r\n+CGMR: LE20B04SIM7600G22\r\n\r\nOK\r\n")
    assert await task == ["+CGMR: LE20B04SIM7600G22"] and urcs == []
    await port.close()


async def test_cpin_without_a_final_ok_settles_on_its_answer() -> None:
    """python-gsmmodem's Wavecom profile: 'AT+CPIN?' → ['+CPIN: READY'] and no OK."""
    port, reader, writer, _ = make_port()
    task = asyncio.create_task(port.command("AT+CPIN?", timeout=2.0, expect="+CPIN", settle=0.05))
    await answer(reader, writer, "\r\n+CPIN: READY\r\n")
    assert await asyncio.wait_for(task, 1.0) == ["+CPIN: READY"]
    await port.close()


async def test_a_vendor_code_between_cds_and_its_pdu() -> None:
    port, reader, _writer, urcs = make_port()
    reader.feed_data(b"\r\n+CDS: 25\r\n^RSSI:14\r\n0006D60B911326880736F4111011719551401110117195714000\r\n")
    await asyncio.sleep(0.01)
    assert urcs == [Urc("^RSSI", "14"), Urc("+CDS", "25", "0006D60B911326880736F4111011719551401110117195714000")]
    reader.feed_data(b"\r\n+CDS: 25\r\nOK\r\n")  # and a +CDS whose PDU never came is not fed junk
    await asyncio.sleep(0.01)
    assert urcs[-1] == Urc("+CDS", "25", None)
    await port.close()


async def test_a_send_met_by_silence_is_declared_hung_before_its_ceiling() -> None:
    port, reader, writer, _ = make_port()
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.create_task(port.send_pdu(12, "0011AABB", timeout=30.0, silence=0.2))
    await answer(reader, writer, "\r\n> ")
    with pytest.raises(AtHung):
        await task
    assert loop.time() - started < 2.0
    await port.close()


async def test_a_slow_send_with_signs_of_life_is_not_hung() -> None:
    port, reader, writer, urcs = make_port()
    task = asyncio.create_task(port.send_pdu(12, "0011AABB", timeout=5.0, silence=0.3))
    await answer(reader, writer, "\r\n> ")
    for _ in range(4):  # the modem keeps talking (a URC every 0.2 s) while the network takes its time
        await asyncio.sleep(0.2)
        reader.feed_data(b"\r\n^RSSI:14\r\n")
    reader.feed_data(b"\r\n+CMGS: 9\r\n\r\nOK\r\n")
    assert await task == ["+CMGS: 9"]
    assert len(urcs) == 4
    await port.close()


def test_storage_and_cnmi_choices_from_odd_answers() -> None:
    assert choose_storage('+CPMS: (("SM","BM","SR"),("SM"))') == "SM"  # Wavecom, nested
    assert choose_storage("+CPMS: (),(),()") is None  # Nokia N79: nothing offered
    assert choose_storage('+CPMS: "ME","SM","SR"') == "ME"  # no parentheses at all
    assert choose_storage("+CPMS: (MT,SM),(MT,SM),(MT,SM)") == "SM"  # no quotes
    assert choose_storage('+CPMS: ("MT","SR"),("MT"),("MT")') == "MT"  # only what it named
    assert choose_cnmi("+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)") == (2, 1, 0, 1, 0)
