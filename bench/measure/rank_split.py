# Ranks of bench/measure/original_split.sh results against a truth journal.
# usage: rank_split.py TRUTH.jsonl OURS.jsonl ORIGINAL.txt TIMING.json
import collections, json, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ranking import journal as J, spearman as sp  # noqa: E402
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
