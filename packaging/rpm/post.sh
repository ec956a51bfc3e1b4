if [ "$1" -eq 1 ]; then /usr/lib/jianmen/setup install; else /usr/lib/jianmen/setup upgrade; fi
