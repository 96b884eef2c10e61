# Stage 2, image only, CPU recipe with attention pooling (issue 31 item 2): as
# msom_cet1_cpu.py, but a patient's windows are pooled by attention-based
# multiple-instance learning (Ilse et al. 2018) instead of the mean: a small
# network scores each window's image feature, the patient logit is the
# softmax-weighted sum of its windows' logits, and evaluation and prediction pool
# the same way (mmnpc.models.bag_pooling). Not measured yet against the mean.
#   python tools/train.py configs/msom_cet1_cpu_attention.py --data-root DATA
_base_ = './msom_cet1_cpu.py'

model = dict(bag_pooling='attention')
