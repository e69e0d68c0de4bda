# Ranks of bench/measure/original_split.sh results against a truth journal.
# usage: rank_split.py TRUTH.jsonl OURS.jsonl ORIGINAL.txt TIMING.json
import json, collections, sys
def J(p): return {r["unit"]["id"]: r for r in map(json.loads, open(p)) if r.get("kind")=="measurement"}
def ranks(v):
    o=sorted(range(len(v)),key=lambda i:v[i]); r=[0]*len(v); i=0
    while i<len(v):
        j=i
        while j+1<len(v) and v[o[j+1]]==v[o[i]]: j+=1
        for k in range(i,j+1): r[o[k]]=(i+j)/2
        i=j+1
    return r
def sp(a,b):
    ra,rb=ranks(a),ranks(b); n=len(a); ma=sum(ra)/n; mb=sum(rb)/n
    c=sum((x-ma)*(y-mb) for x,y in zip(ra,rb)); return c/(sum((x-ma)**2 for x in ra)**.5*sum((y-mb)**2 for y in rb)**.5)
T=J(sys.argv[1]); O=J(sys.argv[2])
orig={}
for l in open(sys.argv[3]):
    a=l.split()
    if len(a)==2: orig[a[0]]=float(a[1])
tim=json.load(open(sys.argv[4])); print(tim)
n=sorted(set(T)&set(O)); print('ours on', len(n))
print('ours dKLD vs truth dKLD', round(sp([O[x]['delta_kld'] for x in n],[T[x]['delta_kld'] for x in n]),4), ' vs truth dlnPPL', round(sp([O[x]['delta_kld'] for x in n],[T[x]['delta_ln_ppl'] for x in n]),4))
print('truth dlnPPL vs truth dKLD', round(sp([T[x]['delta_ln_ppl'] for x in n],[T[x]['delta_kld'] for x in n]),4))
m=sorted(set(n)&set(orig)); print('original on', len(m))
print('subset vs truth dKLD: ours', round(sp([O[x]['delta_kld'] for x in m],[T[x]['delta_kld'] for x in m]),4), 'orig', round(sp([orig[x] for x in m],[T[x]['delta_kld'] for x in m]),4))
print('subset vs truth lnppl: ours', round(sp([O[x]['delta_kld'] for x in m],[T[x]['delta_ln_ppl'] for x in m]),4), 'orig', round(sp([orig[x] for x in m],[T[x]['delta_ln_ppl'] for x in m]),4))
missing=sorted(set(n)-set(orig)); print('missing', missing)
c=sum(O[x]['n_chunks'] for x in n); print('chunks/tensor', c/len(n))
print(collections.Counter(O[x]['stopped'] for x in n))
per=tim['original_serial_s']/tim['original_serial_k']; est=tim['original_base_s']+per*86
print('orig per tensor', per, 'est total', est, 'ratio', est/tim['ours_s'])
