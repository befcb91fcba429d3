/** mod_lbmethod_heartbeat's draw among the storage file's servers (src/monitor/balancer.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  balancerMembers,
  balancerShares,
  heardElsewhere,
  memberShares,
} from "../../src/monitor/balancer.ts";
import { parseStorage } from "../../src/monitor/storage.ts";

test("balancer: shares by the balancer's rules (ready/4 when busy is 0, too old ignored, the inclusive draw)", () => {
  const shares = balancerShares(parseStorage([
    "10.0.0.1 &ready=40&busy=0&lastseen=1&port=80", // just started: weight 10
    "10.0.0.2 &ready=30&busy=2&lastseen=2&port=80", // weight 30
    "10.0.0.3 &ready=50&busy=5&lastseen=10&port=80", // too old: weight 0
    "10.0.0.4 &ready=0&busy=0&lastseen=0&port=80", // weight 0
  ].join("\n")));
  // ap_random_pick(0, 40) draws 41 numbers; the last server up (10.0.0.4, at ready 0) wins one.
  assert.deepEqual(shares.map((server) => [server.ip, server.weight, server.share]), [
    ["10.0.0.1", 10, 10 / 41],
    ["10.0.0.2", 30, 30 / 41],
    ["10.0.0.3", 0, 0],
    ["10.0.0.4", 0, 1 / 41],
  ]);
  assert.deepEqual(balancerShares([]), []);
});

/** Members on port 80 of `hosts`, in order. */
const on80 = (...hosts: string[]) => hosts.map((host) => ({ url: `http://${host}:80`, host }));

test("balancer: in the balancer's member order, the last member up wins the tie; non-members get nothing", () => {
  const servers = parseStorage([
    "10.0.0.1 &ready=0&busy=3&lastseen=1&port=80", // drained
    "10.0.0.2 &ready=20&busy=2&lastseen=1&port=80",
    "10.0.0.9 &ready=50&busy=2&lastseen=1&port=80", // heard, but no member of this balancer
  ].join("\n"));
  const drainedFirst = memberShares(servers, on80("10.0.0.1", "10.0.0.2"));
  assert.deepEqual(drainedFirst.map((row) => [row.member, row.share]), [
    ["http://10.0.0.1:80", 0],
    ["http://10.0.0.2:80", 1],
  ]);
  assert.deepEqual(
    heardElsewhere(servers, on80("10.0.0.1", "10.0.0.2")).map((server) => server.ip),
    ["10.0.0.9"],
  );
  // Last, the drained member still gets 1 pick in 21, as measured on real Apache.
  const drainedLast = memberShares(servers, on80("10.0.0.2", "10.0.0.1"));
  assert.deepEqual(drainedLast.map((row) => [row.member, row.share]), [
    ["http://10.0.0.2:80", 20 / 21],
    ["http://10.0.0.1:80", 1 / 21],
  ]);
  // No open slot: nobody is picked (the proxy answers 503). No heartbeat: no share.
  assert.deepEqual(
    memberShares(servers.slice(0, 1), on80("10.0.0.1", "10.0.0.3")).map((row) => row.share),
    [0, 0],
  );
});

test("balancer: the balancer matches a member by host alone: port= plays no part, and two members on one host count its weight twice, all for the later one", () => {
  const servers = parseStorage([
    "10.0.0.1 &ready=20&busy=2&lastseen=1&port=8080",
    "10.0.0.2 &ready=10&busy=1&lastseen=1&port=80",
  ].join("\n"));
  // A heartbeat naming port 8080 is the server of member :80.
  assert.deepEqual(
    memberShares(servers, on80("10.0.0.1", "10.0.0.2")).map((row) => [row.member, row.share]),
    [["http://10.0.0.1:80", 20 / 31], ["http://10.0.0.2:80", 11 / 31]],
  );
  // :80 and :8080 on 10.0.0.1: its 20 counted for each (openslots 20+20+10), both to :8080.
  const members = [
    { url: "http://10.0.0.1:80", host: "10.0.0.1" },
    { url: "http://10.0.0.1:8080", host: "10.0.0.1" },
    { url: "http://10.0.0.2:80", host: "10.0.0.2" },
  ];
  assert.deepEqual(
    memberShares(servers, members).map((row) => [row.member, row.weight, row.picksTo, row.share]),
    [
      ["http://10.0.0.1:80", 20, "http://10.0.0.1:8080", 0],
      ["http://10.0.0.1:8080", 20, "http://10.0.0.1:8080", 40 / 51],
      ["http://10.0.0.2:80", 10, "http://10.0.0.2:80", 11 / 51],
    ],
  );
  // The shared host last: it wins the tie too, for :8080.
  const sharedLast = [members[2], members[0], members[1]];
  assert.deepEqual(memberShares(servers, sharedLast).map((row) => row.share), [
    10 / 51,
    0,
    41 / 51,
  ]);
});

test("balancer: balancer members, in order, from Apache's BalancerMember lines", () => {
  const section = (args: string[]) => [{ name: "Proxy", args }];
  assert.deepEqual(
    balancerMembers([
      {
        name: "BalancerMember",
        args: ["http://10.0.0.2:80"],
        sections: section(["balancer://web/"]),
      },
      { name: "ProxySet", args: ["lbmethod=heartbeat"], sections: section(["balancer://web/"]) },
      {
        name: "balancermember",
        args: ["http://10.0.0.1:8080", "loadfactor=2"],
        sections: section(["balancer://web/"]),
      },
      { name: "BalancerMember", args: ["balancer://API", "http://10.0.1.1"], sections: [] },
      { name: "BalancerMember", args: ["not-a-url"], sections: section(["balancer://web"]) },
    ]),
    new Map([
      ["balancer://web", [
        { url: "http://10.0.0.2:80", host: "10.0.0.2" },
        { url: "http://10.0.0.1:8080", host: "10.0.0.1" },
      ]],
      ["balancer://api", [{ url: "http://10.0.1.1", host: "10.0.1.1" }]],
    ]),
  );
});
