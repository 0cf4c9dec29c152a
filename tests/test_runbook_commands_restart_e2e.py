"""A runbook command survives the agent being killed mid-action, and is
carried out once: a real agent process (spool on disk), a socket stand-in
for upsd whose driver never finishes the instant command, and a collector
that keeps the command as the exactly-once protocol says: offered on every
heartbeat answer until the agent's `action` result for it is ingested.

(The collector's half of that protocol is another branch's work; this
receiver implements exactly that half on 127.0.0.1 over real HTTP, so the
agent's half is proven on its own.)
"""

from __future__ import annotations

import asyncio
import signal
import threading

from aiohttp import web

from agent import wire
from agent.runbook_commands import INTERRUPTED

from .support.agent import AgentProcess
from .support.paths import free_port
from .support.upsd_standin import UpsdStandIn
from .test_delivery_e2e import wait_for
from .test_nut_agent import ONLINE

TOKEN = "agent-restart-token-xxxxxxxxxxxxxx"
COMMAND = {"id": "INC-7/R1/self-test", "check": "action/runbook/INC-7/R1/self-test",
           "action": {"type": "nut_command", "ups": "main",
                      "command": "test.battery.start.quick"}}


class KeepingCollector:
    """Ingests events once (dedupe by id); re-offers COMMAND until its result is in."""

    def __init__(self):
        self.port = free_port()
        self.stored: dict[str, wire.Event] = {}
        self.resends = 0
        self.offers = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        assert self._started.wait(10)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/api/v1/events", self.events)
        app.router.add_post("/api/v1/heartbeat", self.heartbeat)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._started.set()
        self._loop.run_forever()

    def results(self) -> list[wire.Event]:
        return [e for e in list(self.stored.values()) if e.check == COMMAND["check"]]

    async def events(self, request: web.Request):
        batch = wire.decode(await request.read(), wire.Batch)
        ack = wire.Ack(accepted=[], duplicates=[])
        for e in batch.events:
            if e.id in self.stored:
                self.resends += 1
                ack.duplicates.append(e.id)
            else:
                self.stored[e.id] = e
                ack.accepted.append(e.id)
        return web.Response(body=wire.encode(ack), content_type="application/json")

    async def heartbeat(self, request: web.Request):
        wire.decode(await request.read(), wire.Heartbeat)
        if self.results():
            return web.Response(status=204)   # the result is in: the command is done
        self.offers += 1
        return web.json_response({"commands": [COMMAND]})

    def stop(self):
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def test_an_agent_killed_mid_command_answers_interrupted_and_never_acts_twice(tmp_path):
    upsd = UpsdStandIn("main", dict(line.split(": ", 1) for line in ONLINE.splitlines()),
                       commands=("test.battery.start.quick",))
    collector = KeepingCollector()
    config = {
        "agent": {"id": "a1", "branch": "B1", "region": "north"},
        "state": {"debounce": 1},
        "ups": [{"name": "main", "interval": 1,
                 "nut": {"ups": "main", "port": upsd.port, "user": "admin",
                         "password": "adminpass", "timeout": 2,
                         "actions": {"commands": ["test.battery.start.quick"]}}}],
        "collector": {"url": f"http://127.0.0.1:{collector.port}", "token": TOKEN,
                      "heartbeat_interval": 0.5, "timeout": 0.4,
                      "spool": {"path": str(tmp_path / "spool.db")}},
    }
    (tmp_path / "a").mkdir()
    agent = AgentProcess(tmp_path / "a", config).start()
    try:
        # The command arrives; the agent is carrying it out (the driver is slow)
        # when the machine loses power.
        assert upsd.instcmd_heard.wait(20), "the agent never sent the instant command"
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait(10)
        assert collector.results() == []

        agent = AgentProcess(tmp_path / "a", config).start()
        [result] = wait_for(collector.results, what="the command's result at the collector")
        assert (result.kind, result.new_state, result.reason) == ("action", "critical",
                                                                   INTERRUPTED)
        assert upsd.instcmds == ["INSTCMD main test.battery.start.quick"], \
            "the command was carried out twice"
        wait_for(lambda: agent.metric("branchwatch_spool_depth") == 0, what="an empty spool")
        # Offered again on every heartbeat until the result was in; each answered
        # with the one stored result (same id), never carried out again.
        printed = [e for e in agent.events if e["check"] == COMMAND["check"]]
        assert {e["id"] for e in printed} == {result.id}
        assert len(collector.results()) == 1
        print(f"fault killed-mid-command: carried out {len(upsd.instcmds)}x, results stored "
              f"{len(collector.results())}, resends deduped {collector.resends}, "
              f"offers {collector.offers}")
    finally:
        agent.stop()
        collector.stop()
        upsd.close()
