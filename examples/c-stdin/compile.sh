gcc -O2 -Wall -o sum main.c
