# A runner reports a failure with nats-py (pip install nats-py): one JetStream
# publish, stored even while Baton is down; Nats-Msg-Id dedupes retries.
import asyncio, json, os, nats

async def main():
    nc = await nats.connect(os.environ.get("NATS_URL", "nats://127.0.0.1:4223"))
    report = json.load(open("examples/reports/p1-complete.json"))
    ack = await nc.jetstream().publish("baton.report.agent_failure", json.dumps(report).encode(),
                                       headers={"Nats-Msg-Id": report["run_id"]})
    print(f"stored: {ack.stream} seq {ack.seq}")
    await nc.close()

asyncio.run(main())
