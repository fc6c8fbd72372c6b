figlet-lite "built by Nix"
