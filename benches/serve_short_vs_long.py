"""Short /chat requests beside long ones: how long a short request waits.

Usage: python3 benches/serve_short_vs_long.py PORT HEAVY SECONDS

Against a running `recur serve` on 127.0.0.1:PORT: HEAVY threads send
/chat requests of five 2,000-character messages, back to back, and four
threads send a short two-message turn every 0.2 s; prints the short
requests' p50, p90 and max latency. Standard library only.
"""
import json, random, sys, threading, time, http.client, statistics
port=int(sys.argv[1]); heavy=int(sys.argv[2]); secs=float(sys.argv[3])
words="the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were her she there".split()
stop=time.time()+secs
def post(body):
    c=http.client.HTTPConnection("127.0.0.1",port,timeout=60)
    c.request("POST","/chat",json.dumps(body),{"content-type":"application/json"})
    r=c.getresponse(); r.read(); c.close(); return r.status
def heavy_loop(i):
    rng=random.Random(i)
    while time.time()<stop:
        msgs=[" ".join(rng.choice(words) for _ in range(400))[:2000] for _ in range(5)]
        post({"messages":msgs})
small=[]
def small_loop(i):
    rng=random.Random(1000+i)
    while time.time()<stop:
        t=time.time(); s=post({"messages":["Hello there", f"How are you {rng.random()}?"]})
        if s==200: small.append(time.time()-t)
        time.sleep(0.2)
ts=[threading.Thread(target=heavy_loop,args=(i,)) for i in range(heavy)]+[threading.Thread(target=small_loop,args=(i,)) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
small.sort()
print(f"heavy {heavy}: small requests {len(small)}, p50 {statistics.median(small):.3f} s, p90 {small[int(0.9*len(small))]:.3f} s, max {small[-1]:.3f} s")
