#include <stdio.h>

/* Read integers from stdin and print their sum. */
int main(void) {
    long long total = 0, value;
    while (scanf("%lld", &value) == 1) {
        total += value;
    }
    printf("sum: %lld\n", total);
    return 0;
}
