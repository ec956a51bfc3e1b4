if [ "$1" -eq 0 ]; then /usr/lib/jianmen/setup remove; fi
