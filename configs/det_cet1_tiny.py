# CPU-sized variant of det_cet1.py for the demo and tests: the same Mask R-CNN
# R50-FPN on 256 px input with a short iteration schedule (_base_/det_tiny_cpu.py).
#   python tools/train.py configs/det_cet1_tiny.py --data-root DATA
_base_ = './_base_/det_tiny_cpu.py'

sequence = 'cet1'  # the dataset base's default; --data-root DIR reads DIR/cet1/
