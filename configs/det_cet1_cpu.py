# The CPU recipe on contrast-enhanced T1WI: Mask R-CNN R50-FPN from random initialisation,
# trained on whole slices at 256 px with anchors matched to the lesions and a
# 1300-iteration schedule (_base_/det_cpu.py); 37 min on 2 cores here.
# docs/detection.md gives its AP@0.5 on held-out patients.
#   python tools/train.py configs/det_cet1_cpu.py --data-root DATA
_base_ = './_base_/det_cpu.py'

sequence = 'cet1'  # --data-root DIR reads DIR/cet1/
