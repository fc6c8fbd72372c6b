./sum
