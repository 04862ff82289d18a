"""raftkv with redis-py, as an application uses it: RedisCluster discovery
and routing from any node, pipelines, transactions (MULTI/EXEC, WATCH),
the string commands, and failover: a RedisCluster client writing in a loop
while the leader is killed with SIGKILL loses no acknowledged write.

Run by node/tests/compat.rs against a real 3-node cluster:
    python redis_py.py HOST:PORT[,HOST:PORT...]
Exits non-zero on the first failed check. The last line is the failover
measurement as JSON (the `failover` object). bench/redis_py_failover.sh
runs only the failover, with `--failover-only [REFRESH_MIN_INTERVAL_S]`
(redis-py's topology_refresh_min_interval; its default is 1 s).
"""

import json
import os
import signal
import sys
import time

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ResponseError, WatchError

# Writes acknowledged before the kill, and after it (the new leader must
# take this many before the check ends).
WRITES_BEFORE_KILL = 200
WRITES_AFTER_KILL = 200
# Longest the whole failover loop may take before the check fails.
FAILOVER_DEADLINE_S = 60.0


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def cluster_client(addrs, **options):
    nodes = [ClusterNode(host, int(port)) for host, port in (a.rsplit(":", 1) for a in addrs)]
    return RedisCluster(startup_nodes=nodes, decode_responses=True, **options)


def raft_status(addr):
    host, port = addr.rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port), decode_responses=True, socket_timeout=2)
    fields = client.execute_command("RAFT.STATUS")
    client.close()
    if isinstance(fields, dict):
        return fields
    return dict(zip(fields[0::2], fields[1::2]))


def leader_addr(addrs):
    for addr in addrs:
        try:
            status = raft_status(addr)
        except redis.RedisError:
            continue
        if status["role"] == "leader":
            return addr, int(status["pid"])
    return None, None


def discovery_and_routing(addrs, leader):
    # Start from a follower: the client must find the leader by itself.
    follower = [a for a in addrs if a != leader][0]
    rc = cluster_client([follower])
    primaries = [f"{n.host}:{n.port}" for n in rc.get_primaries()]
    replicas = sorted(f"{n.host}:{n.port}" for n in rc.get_replicas())
    check(primaries == [leader], f"the primary is the leader: {primaries} vs {leader}")
    check(replicas == sorted(a for a in addrs if a != leader), f"replicas: {replicas}")
    check(rc.set("compat:routed", "1") is True, "SET through a follower-started client")
    check(rc.get("compat:routed") == "1", "GET")
    check(rc.cluster_keyslot("foo") == 12182, "CLUSTER KEYSLOT")
    info = rc.cluster_info(target_nodes=RedisCluster.PRIMARIES)
    check(info["cluster_state"] == "ok", f"CLUSTER INFO: {info}")
    rc.close()


def commands(rc):
    check(rc.incr("compat:n") == 1, "INCR")
    check(rc.incrby("compat:n", 9) == 10, "INCRBY")
    check(rc.decr("compat:n") == 9, "DECR")
    check(float(rc.incrbyfloat("compat:f", 2.5)) == 2.5, "INCRBYFLOAT")
    check(rc.append("compat:s", "ab") == 2 and rc.strlen("compat:s") == 2, "APPEND/STRLEN")
    check(rc.getrange("compat:s", 0, 0) == "a", "GETRANGE")
    check(rc.setrange("compat:s", 1, "Z") == 2 and rc.get("compat:s") == "aZ", "SETRANGE")
    check(rc.set("compat:lock", "me", nx=True) is True, "SET NX")
    check(rc.set("compat:lock", "you", nx=True) is None, "SET NX on an existing key")
    check(rc.set("compat:lock", "x", xx=True, get=True) == "me", "SET XX GET")
    check(rc.getset("compat:lock", "y") == "x", "GETSET")
    check(rc.getdel("compat:lock") == "y" and rc.exists("compat:lock") == 0, "GETDEL")
    check(rc.setnx("compat:nx", "1") is True and rc.setnx("compat:nx", "2") is False, "SETNX")
    check(rc.msetnx({"{m}a": "1", "{m}b": "2"}) is True, "MSETNX")
    check(rc.type("compat:nx") == "string" and rc.type("compat:none") == "none", "TYPE")
    check(rc.rename("{m}a", "{m}c") is True and rc.get("{m}c") == "1", "RENAME")
    check(rc.renamenx("{m}c", "{m}b") is False, "RENAMENX")
    check(rc.unlink("{m}c") == 1, "UNLINK")
    check(rc.touch("{m}b") == 1, "TOUCH")
    try:
        rc.incr("compat:s")
        check(False, "INCR of a word must fail")
    except ResponseError as error:
        check("not an integer" in str(error), f"INCR error text: {error}")
    try:
        rc.eval("return 1", 0)
        check(False, "EVAL must be refused")
    except (ResponseError, redis.RedisError) as error:
        check("MULTI/EXEC" in str(error), f"EVAL refusal: {error}")


def expiry(rc):
    check(rc.set("compat:ttl", "v", ex=100) is True, "SET EX")
    check(rc.ttl("compat:ttl") == 100, "TTL")
    check(rc.pexpire("compat:ttl", 50_000) is True and rc.ttl("compat:ttl") == 50, "PEXPIRE")
    check(rc.persist("compat:ttl") is True and rc.ttl("compat:ttl") == -1, "PERSIST")
    check(rc.setex("compat:short", 1, "v") is True, "SETEX")
    check(rc.set("compat:gone", "v", px=50) is True, "SET PX")
    deadline = time.monotonic() + 10
    while rc.get("compat:gone") is not None:
        check(time.monotonic() < deadline, "a key with a 50 ms TTL never expired")
        time.sleep(0.01)
    check(rc.exists("compat:gone") == 0 and rc.ttl("compat:gone") == -2, "expired key is gone")
    check(rc.getex("compat:short", persist=True) == "v" and rc.ttl("compat:short") == -1, "GETEX PERSIST")


def pipelines_and_transactions(rc):
    pipe = rc.pipeline()
    for i in range(50):
        pipe.set(f"compat:p:{i}", i)
    check(all(reply is True for reply in pipe.execute()), "pipeline of 50 SETs")
    check(rc.get("compat:p:49") == "49", "pipelined write readable")

    tx = rc.pipeline(transaction=True)
    tx.set("{tx}a", 1).incr("{tx}a").get("{tx}a")
    replies = tx.execute()
    check(replies in ([True, 2, "2"], ["OK", 2, "2"]), f"MULTI/EXEC pipeline: {replies}")

    tx = rc.pipeline(transaction=True)
    tx.watch("{tx}a")
    rc.set("{tx}a", 100)  # another client changes the watched key
    tx.multi()
    tx.set("{tx}a", 0)
    try:
        tx.execute()
        check(False, "a transaction on a changed WATCHed key must abort")
    except WatchError:
        pass
    check(rc.get("{tx}a") == "100", "an aborted transaction applied nothing")
    tx.reset()


def failover(addrs, **options):
    """Writes in a loop through RedisCluster, kills the leader with SIGKILL,
    and keeps writing. Every write that was acknowledged must be readable
    afterwards. Returns the measurement."""
    leader, pid = leader_addr(addrs)
    check(pid is not None, "a leader before the kill")
    rc = cluster_client(addrs, **options)
    acked = {}
    ack_times = []
    errors = 0
    killed_at = None
    i = 0
    started = time.monotonic()
    while len(ack_times) < WRITES_BEFORE_KILL + WRITES_AFTER_KILL:
        check(time.monotonic() - started < FAILOVER_DEADLINE_S, "failover loop deadline")
        if killed_at is None and len(ack_times) == WRITES_BEFORE_KILL:
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
        key, value = f"failover:{i:06d}", str(i)
        try:
            if rc.set(key, value) is True:
                acked[key] = value
                ack_times.append(time.monotonic())
                i += 1
        except (redis.RedisError, redis.exceptions.RedisClusterException, OSError):
            # Not acknowledged: the same key is written again (SET is idempotent).
            errors += 1
            time.sleep(0.001)
    survivors = [a for a in addrs if a != leader]
    new_leader, _ = leader_addr(survivors)
    reader = cluster_client(survivors)
    lost = [k for k, v in acked.items() if reader.get(k) != v]
    check(not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:5]}")
    gaps = [b - a for a, b in zip(ack_times, ack_times[1:])]
    return {
        "acknowledged": len(acked),
        "lost": len(lost),
        "failed_attempts": errors,
        "longest_gap_ms": round(max(gaps) * 1000, 1),
        "old_leader": leader,
        "new_leader": new_leader,
    }


def main():
    addrs = sys.argv[1].split(",")
    if len(sys.argv) > 2 and sys.argv[2] == "--failover-only":
        options = {}
        if len(sys.argv) > 3:
            options["topology_refresh_min_interval"] = float(sys.argv[3])
        print(json.dumps({"redis_py": redis.__version__, "options": options,
                          "failover": failover(addrs, **options)}))
        return
    leader, _ = leader_addr(addrs)
    check(leader is not None, "a leader")
    discovery_and_routing(addrs, leader)
    rc = cluster_client(addrs)
    check(rc.flushall(target_nodes=RedisCluster.PRIMARIES) is True, "FLUSHALL")
    check(rc.dbsize(target_nodes=RedisCluster.PRIMARIES) == 0, "DBSIZE after FLUSHALL")
    commands(rc)
    expiry(rc)
    pipelines_and_transactions(rc)
    rc.close()
    print(json.dumps({"redis_py": redis.__version__, "failover": failover(addrs)}))


if __name__ == "__main__":
    main()
