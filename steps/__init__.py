"""The step programs run inside pods, and the data-plane contract they share.

prepare-data, train-resnet, test-resnet and produce-metrics. Never imports kubernetes, nor :mod:`storage`.
"""
