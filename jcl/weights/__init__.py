"""Weights from elsewhere and for elsewhere: reading PyTorch, safetensors
and ``.npz`` files (:mod:`jcl.weights.statedict`), pre-training a
convolutional front end (:mod:`jcl.weights.front_end`) or a ResNet
backbone (:mod:`jcl.weights.pretrain_resnet`)."""
