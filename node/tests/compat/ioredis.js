// ioredis's cluster client against a raftkv cluster, as a Node.js user
// writes it: `new Redis.Cluster(startup nodes)` from the nodes' addresses
// discovers the leader through CLUSTER SLOTS, then SET/GET/INCR/INCRBY, a
// pipeline and a MULTI/EXEC transaction. Prints one JSON line and exits 0,
// or prints the failure and exits 1.
// Usage: node ioredis.js <ioredis module dir> <host:port,...>
const Redis = require(process.argv[2]);
const addrs = process.argv[3].split(",").map((a) => {
  const [host, port] = a.split(":");
  return { host, port: Number(port) };
});

async function main() {
  const cluster = new Redis.Cluster(addrs, {
    redisOptions: { connectTimeout: 2000 },
  });
  try {
    for (let i = 0; i < 100; i++) {
      if ((await cluster.set(`io:${i}`, `v${i}`)) !== "OK") throw new Error(`SET io:${i}`);
    }
    for (let i = 0; i < 100; i++) {
      const v = await cluster.get(`io:${i}`);
      if (v !== `v${i}`) throw new Error(`GET io:${i} -> ${v}`);
    }
    await cluster.set("io:counter", "10");
    if ((await cluster.incr("io:counter")) !== 11) throw new Error("INCR");
    if ((await cluster.incrby("io:counter", 5)) !== 16) throw new Error("INCRBY");
    const piped = await cluster.pipeline().set("io:p", "1").incr("io:p").get("io:p").exec();
    if (piped[2][1] !== "2") throw new Error(`pipeline -> ${JSON.stringify(piped)}`);
    const tx = await cluster.multi().set("io:t", "a").append("io:t", "b").get("io:t").exec();
    if (tx[2][1] !== "ab") throw new Error(`MULTI/EXEC -> ${JSON.stringify(tx)}`);
    console.log(JSON.stringify({ writes: 100, reads: 100, pipeline: "ok", multi: "ok" }));
  } finally {
    cluster.disconnect();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`ioredis suite failed: ${e.stack || e}`);
    process.exit(1);
  }
);
