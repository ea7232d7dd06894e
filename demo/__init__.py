"""The demo market: real offline data sets, learnwares trained at seed time, published through the API."""
